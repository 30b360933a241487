"""Shared fixtures: one thread setting, one tiny Coded ResNeXt factory, one trained checkpoint pair per session.

Tests marked `slow` (subprocesses, servers, XLA, timm's own suite, real-data training) are left out of the fast
lane `pytest -m "not slow"`; the README's test command runs everything.
"""
import argparse
import os
from types import SimpleNamespace

import pytest
import torch

from helpers.models import make_tiny

from helpers import ROOT  # noqa: E402


def pytest_ignore_collect(collection_path, config):
    """The fast lane (-m "not slow") does not even collect timm's upstream suite (all of it is slow)."""
    return config.getoption('markexpr') == 'not slow' and collection_path.name == 'timm_suite' or None


@pytest.fixture(scope='session', autouse=True)
def one_thread():
    """Tiny models run as fast on one thread, and far faster than on two when the 2 cores are shared."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


@pytest.fixture
def tiny():
    """The factory `make_tiny(seed=0, **CodedResNeXt kwargs)`."""
    return make_tiny


# the registered architecture the trained pair is built from, narrowed (kwargs recorded in the checkpoint)
TRAINED_KWARGS = dict(layers=(1, 1, 1), channels=(16, 32, 64), base_width=16)
FASHION_MEAN, FASHION_STD = (0.286,), (0.353,)


def _train(arch: str, out_dir: str, x: torch.Tensor, y: torch.Tensor, steps: int) -> SimpleNamespace:
    """SGD steps with train_hooks' task (coding loss for the coded net), saved by timm's CheckpointSaver with
    train.py-style args, so tools read the architecture and preprocessing from the checkpoint. Returns the
    checkpoint path, the model and the coding loss of every step."""
    import timm
    from timm.task import ClassificationTask
    from timm.utils import CheckpointSaver
    from train_hooks.task import CodedClassificationTask
    torch.manual_seed(0)
    args = argparse.Namespace(
        model=arch, model_kwargs=dict(TRAINED_KWARGS), num_classes=10, in_chans=1, input_size=(1, 28, 28),
        img_size=None, mean=FASHION_MEAN, std=FASHION_STD, crop_pct=1.0, interpolation='bilinear',
        dataset='fashion_mnist', epochs=1, batch_size=32, opt='sgd', lr=0.05, momentum=0.9, weight_decay=5e-4,
        smoothing=0.0, eval_metric='top1', seed=0)
    model = timm.create_model(arch, num_classes=10, in_chans=1, **TRAINED_KWARGS)
    criterion = torch.nn.CrossEntropyLoss()
    coded = arch.startswith('coded')
    task = (CodedClassificationTask(model, criterion, coding_loss_weight=6., verbose=False) if coded
            else ClassificationTask(model, criterion, verbose=False))
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(0)
    curve = []
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(y), (32,), generator=gen)
        result = task(x[idx], y[idx])
        opt.zero_grad()
        result['loss'].backward()
        opt.step()
        curve.append(result['coding_loss'].item() if coded else None)
    os.makedirs(out_dir, exist_ok=True)
    saver = CheckpointSaver(model.eval(), opt, args=args, checkpoint_dir=out_dir, recovery_dir=out_dir, task=task)
    saver.save_checkpoint(0, 0.)
    return SimpleNamespace(path=os.path.join(out_dir, 'model_best.pth.tar'), model=model, coding_losses=curve)


@pytest.fixture(scope='session')
def trained(tmp_path_factory):
    """A tiny Coded ResNeXt and its plain baseline (`coded_resnext29_10x11d` / `resnext29_10x11d` narrowed by
    TRAINED_KWARGS, 1 channel, 28 px), 250 steps each on 300 Fashion-MNIST images per class, saved as timm
    training checkpoints; the coded net's coding-loss curve and early-decoder accuracy before training; the test
    tensors (20 images per class, normalised)."""
    from helpers.data import have_fashion_mnist
    if not have_fashion_mnist():
        pytest.skip('needs Debian dataset-fashion-mnist (scripts/env.sh installs it)')
    import timm
    import timm_coded
    from timm_coded.data import FashionMNIST, balanced_indices

    def tensors(split: str, per_class: int):
        full = FashionMNIST(split=split, in_chans=1)
        ds = FashionMNIST(split=split, in_chans=1, indices=balanced_indices(full.targets, per_class, 0))
        x = torch.from_numpy(ds.images.copy()).float().div(255.).sub(FASHION_MEAN[0]).div(FASHION_STD[0])
        return x.unsqueeze(1), torch.from_numpy(ds.targets)
    x, y = tensors('train', 300)
    x_test, y_test = tensors('test', 20)
    torch.manual_seed(0)
    untrained = timm.create_model('coded_resnext29_10x11d', num_classes=10, in_chans=1, **TRAINED_KWARGS).eval()
    before = [(s.argmax(1) == y_test).float().mean().item() for s in timm_coded.early_decode(untrained, x_test)]
    root = tmp_path_factory.mktemp('trained')
    coded = _train('coded_resnext29_10x11d', str(root / 'coded'), x, y, 250)
    plain = _train('resnext29_10x11d', str(root / 'plain'), x, y, 250)
    return SimpleNamespace(root=root, coded=coded.path, plain=plain.path, coded_model=coded.model,
                           coding_losses=coded.coding_losses, decoders_before=before, test=(x_test, y_test),
                           arch='coded_resnext29_10x11d', kwargs=TRAINED_KWARGS)
