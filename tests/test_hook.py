"""Coding loss (Eq. 5-6) and the three ways into training: function, ClassificationTask, timm patch."""
import importlib
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from timm.task import ClassificationTask

import timm_coded
from train_hooks.task import CodedClassificationTask

from helpers import ROOT
from helpers.ddp_coding_loss import batch, build, total_loss
from helpers.models import make_tiny


def tiny(**kwargs):
    """N = 6 subNNs, two blocks in stage 2, three coding schemes' worth of blocks (6/6, 3/6, 2/6)."""
    return make_tiny(**dict(layers=(1, 2, 1), channels=(8, 16, 32), cardinality=6, num_classes=6,
                            coding_ratios=('6/6', '3/6', '2/6'), drop_subnn_rate=0.1, **kwargs))


def hand_coding_loss(model, target_rows):
    """Eq. 5 summed over blocks, with plain Python loops and floats."""
    total = 0.
    for block in model.coded_blocks():
        energies = block.subnn_energies.tolist()
        codebook = model.codebooks.get(block.coding_key).tolist()
        r = block.num_active / block.num_subnns
        per_sample = []
        for e_row, weights in zip(energies, target_rows):
            word = [sum(w * codebook[k][n] for k, w in enumerate(weights)) for n in range(block.num_subnns)]
            per_sample.append(sum((r * e - wn) ** 4 for e, wn in zip(e_row, word)) / block.num_subnns)
        total += sum(per_sample) / len(per_sample)
    return total


def test_loss_equals_hand_computation_hard_and_soft_targets():
    torch.manual_seed(0)
    model = tiny().train()
    x, y = torch.randn(5, 3, 16, 16), torch.tensor([0, 3, 5, 1, 3])
    model(x)
    one_hot = F.one_hot(y, 6).tolist()
    loss = timm_coded.coding_loss(model, y, consume=False)
    assert loss.item() == pytest.approx(hand_coding_loss(model, one_hot), rel=1e-5)
    assert timm_coded.coding_loss(model, F.one_hot(y, 6).float(), consume=False).item() == pytest.approx(loss.item())
    soft = torch.softmax(torch.randn(5, 6), dim=1)  # e.g. Mixup / label smoothing targets
    hand = hand_coding_loss(model, soft.tolist())
    assert timm_coded.coding_loss(model, soft).item() == pytest.approx(hand, rel=1e-5)
    per_block = timm_coded.coding_loss  # per-block variant sums to the total
    model(x)
    assert per_block(model, y, per_block=True).shape == (3,)


def test_gradients_reach_every_coded_block():
    model = tiny().train()
    model(torch.randn(4, 3, 16, 16))
    timm_coded.coding_loss(model, torch.tensor([0, 1, 2, 3])).backward()
    for name, block in timm_coded.named_coded_blocks(model):
        for layer in (block.conv1, block.conv2, block.conv3):
            assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0, name


def test_grad_checkpointing_gives_the_same_loss():
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 3])
    losses, grads = [], []
    for ckpt in (False, True):
        torch.manual_seed(0)
        model = tiny().train()
        model.set_grad_checkpointing(ckpt)
        torch.manual_seed(3)
        out = model(x)
        loss = F.cross_entropy(out, y) + 6 * timm_coded.coding_loss(model, y)
        loss.backward()
        losses.append(loss.item())
        grads.append(model.layer2[0].conv2.weight.grad.clone())
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-7)


def test_clear_errors():
    plain = timm.create_model('resnext29_10x11d')
    plain(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match='has no coded blocks'):
        timm_coded.coding_loss(plain, torch.tensor([0]))
    with pytest.raises(ValueError, match='has no coded blocks'):
        timm_coded.coding_loss(timm.create_model('resnet18'), torch.tensor([0]))
    model = tiny()
    with pytest.raises(RuntimeError, match='run a forward pass'):
        timm_coded.coding_loss(model, torch.tensor([0]))
    model(torch.randn(2, 3, 16, 16))
    with pytest.raises(ValueError, match='Class index out of range: the codebook has 6 classes .*Targets span 0..6'):
        timm_coded.coding_loss(model, torch.tensor([0, 6]), consume=False)
    with pytest.raises(ValueError, match='Soft targets have 10 classes but the codebook has 6'):
        timm_coded.coding_loss(model, torch.rand(2, 10), consume=False)
    timm_coded.coding_loss(model, torch.tensor([0, 5]))
    with pytest.raises(RuntimeError, match='run a forward pass'):  # consumed: no forward since the last loss
        timm_coded.coding_loss(model, torch.tensor([0, 5]))


def test_wrapped_and_compiled_models():
    model = tiny()
    compiled = torch.compile(model, backend='eager')
    compiled(torch.randn(2, 3, 16, 16))
    assert timm_coded.coding_loss(compiled, torch.tensor([1, 2])).ndim == 0
    ema = timm.utils.ModelEmaV3(model)
    ema.module(torch.randn(2, 3, 16, 16))
    assert timm_coded.coding_loss(ema, torch.tensor([1, 2])).ndim == 0


@pytest.mark.slow
def test_ddp_two_gloo_processes_match_one_process(tmp_path):
    out = tmp_path / 'ddp.pt'
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, 'tests'), ROOT]), OMP_NUM_THREADS='1')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', '29517',
           os.path.join(ROOT, 'tests', 'helpers', 'ddp_coding_loss.py'), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = torch.load(out)
    model = build().eval()
    x, y = batch()
    loss = total_loss(model, x, y)
    loss.backward()
    assert ddp['loss'].item() == pytest.approx(loss.item(), rel=1e-5)
    for name, p in model.named_parameters():
        torch.testing.assert_close(ddp['grads'][name], p.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_coded_classification_task():
    model = tiny().train()
    task = CodedClassificationTask(model, coding_loss_weight=4., verbose=False)
    x, y = torch.randn(3, 3, 16, 16), torch.tensor([1, 4, 2])
    torch.manual_seed(0)
    result = task(x, y)
    assert set(result) >= {'loss', 'output', 'class_loss', 'coding_loss', 'coding_losses', 'decoder_preds'}
    assert result['decoder_preds'].shape == (3, 3) and result['coding_losses'].shape == (3,)
    expect = F.cross_entropy(result['output'], y) + 4. * result['coding_loss']
    torch.testing.assert_close(result['loss'], expect)
    result['loss'].backward()
    with pytest.raises(ValueError, match='needs a model with coded blocks'):
        CodedClassificationTask(timm.create_model('resnet18'), verbose=False)


def test_mu_defaults_and_env(monkeypatch):
    assert CodedClassificationTask(timm.create_model('coded_resnext29_10x11d'), verbose=False).coding_loss_weight == 6.
    task = CodedClassificationTask(timm.create_model('coded_resnext50_32x4d', num_classes=10), verbose=False)
    assert task.coding_loss_weight == 2.
    monkeypatch.setenv('TIMM_CODED_MU', '3.5')
    assert CodedClassificationTask(tiny(), verbose=False).coding_loss_weight == 3.5
    monkeypatch.setenv('TIMM_CODED_MU', 'big')
    with pytest.raises(ValueError, match='not a number'):
        CodedClassificationTask(tiny(), verbose=False)


def test_timm_patch_for_device_modules(caplog):
    import train_hooks.timm_patch as patch
    assert patch.patch_classification_task() is False  # importing patched already; a second patch is a no-op
    importlib.reload(patch)
    assert getattr(ClassificationTask.forward, '__wrapped__', None) is not None
    assert not hasattr(ClassificationTask.forward.__wrapped__, '__wrapped__')  # wrapped exactly once

    x, y = torch.randn(2, 3, 16, 16), torch.tensor([1, 2])
    with caplog.at_level(logging.INFO, logger='train'):
        task = ClassificationTask(tiny().eval(), verbose=False)
        result = task(x, y)
        task(x, y)
    assert [r.message for r in caplog.records].count(
        'timm_coded: coding loss active (Eq. 6), mu=6, 3 coded blocks') == 1
    torch.testing.assert_close(result['loss'], F.cross_entropy(result['output'], y) + 6 * result['coding_loss'])

    plain = ClassificationTask(timm.create_model('resnet10t', num_classes=3), verbose=False)
    assert 'coding_loss' not in plain(torch.randn(2, 3, 32, 32), torch.tensor([0, 1]))
    coded = CodedClassificationTask(tiny(), coding_loss_weight=1., verbose=False)  # not added twice
    res = coded(x, y)
    torch.testing.assert_close(res['loss'], res['class_loss'] + res['coding_loss'])
