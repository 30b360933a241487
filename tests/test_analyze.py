"""Interpretability toolkit (timm_coded.analyze): binary classifiers, early decoders, removal, calibration, CLI."""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import timm
import timm_coded
from timm_coded.analyze import (EarlyExit, agreement_table, best_f1_threshold, binary_metrics, calibration_errors,
                                count_flops, count_parameters, decoder_accuracy, extract_binary_classifier,
                                fit_calibration, load_binary_classifier, removal_curves, removal_masks,
                                remove_subnns, save_binary_classifier, scaled_log_probs, stratified_split,
                                subsample_negatives)
from timm_coded.analyze.subnns import active_subnns, codeword_masks

from helpers import ROOT
from helpers.models import make_tiny, randomise_bn

TINY = dict(layers=(1, 1, 1), channels=(16, 32, 64), base_width=16, stem_type='imagenet')


def tiny_coded(**kw):
    return make_tiny(**kw)


def tiny_imagenet_style():
    """4 stages, ImageNet stem, two coded stages, 8 classes: downsample blocks and several blocks per stage."""
    return make_tiny(1, layers=(1, 1, 2, 2), channels=(8, 16, 32, 64), cardinality=8, base_width=8, num_classes=8,
                     coding_ratios=('8/8', '8/8', '4/8', '2/8'), stem_type='imagenet')


# --- binary classifiers -------------------------------------------------------------------------------------

@pytest.mark.parametrize('make', [tiny_coded, tiny_imagenet_style])
def test_extracted_bc_equals_masked_full_model(make):
    model = make()
    x = torch.randn(4, 3, 40, 40)
    for k in range(model.num_classes):
        bc = extract_binary_classifier(model, k)
        with torch.no_grad(), remove_subnns(model, active_subnns(model, k)):
            ref = model(x)[:, k:k + 1]
        with torch.no_grad():
            out = bc(x)
            full = model(x)[:, k:k + 1]
        assert out.shape == (4, 1)
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
        assert not torch.allclose(full, ref, atol=1e-3)  # removing the inactive subNNs does change the logit
        assert count_parameters(bc) < count_parameters(model)


def test_bc_is_physically_sliced():
    model = tiny_coded()
    bc = extract_binary_classifier(model, 3)
    active = active_subnns(model, 3)
    assert set(active) == {'layer2.0', 'layer3.0'}
    for name, keep in active.items():
        stage, idx = name.split('.')
        full, small = getattr(model, stage)[int(idx)], getattr(bc, stage)[int(idx)]
        d = full.conv2.out_channels // 10
        assert small.conv1.out_channels == len(keep) * d and small.conv2.groups == len(keep)
        assert small.conv3.in_channels == len(keep) * d and small.conv3.out_channels == full.conv3.out_channels
        assert small.bn1.num_features == small.bn2.num_features == len(keep) * d
        torch.testing.assert_close(small.conv2.weight[:d], full.conv2.weight[keep[0] * d:(keep[0] + 1) * d])
    assert bc.fc.weight.shape == (1, model.fc.in_features)
    torch.testing.assert_close(bc.fc.weight[0], model.fc.weight[3])
    assert bc.layer1[0].conv2.groups == 10  # r = 1 stage kept whole


def test_exact_parameter_count_by_hand():
    """The BC's parameter count from the layer shapes, written out independently of the module."""
    model = tiny_coded()
    bc = extract_binary_classifier(model, 0)
    c_in = 3
    expected = c_in * 64 * 9 + 2 * 64  # CIFAR stem conv + bn
    inplanes = 64
    for planes, act, stride in zip((16, 32, 64), (10, 5, 3), (1, 2, 2)):
        width_per_subnn = planes * 16 // 64  # floor(planes * base_width / 64) per subNN
        kept = act * width_per_subnn
        out = planes * 4
        expected += inplanes * kept + 2 * kept  # conv1 + bn1 (sliced)
        expected += kept * width_per_subnn * 9 + 2 * kept  # grouped conv2 (N_act groups) + bn2
        expected += kept * out + 2 * out  # conv3 (input channels sliced) + bn3 (whole)
        if stride != 1 or inplanes != out:
            expected += inplanes * out + 2 * out  # downsample conv + bn (whole)
        inplanes = out
    expected += inplanes + 1  # one fc row and its bias
    assert count_parameters(bc) == expected


@pytest.mark.parametrize('name,share', [('coded_resnext29_10x11d', 46.3), ('coded_resnext29_20x6d', 37.4),
                                        ('coded_resnext50_32x4d', 41.6)])
def test_paper_nets_parameter_share(name, share):
    model = timm.create_model(name)
    bc = extract_binary_classifier(model, 0)
    assert round(100 * count_parameters(bc) / count_parameters(model), 1) == share


def test_plain_resnext_extraction_keeps_the_codeword_branches():
    coded = tiny_coded()
    plain = tiny_coded(coding_ratios=('10/10',) * 3)
    x = torch.randn(3, 3, 32, 32)
    with pytest.raises(ValueError, match='no coded blocks'):
        extract_binary_classifier(plain, 2)
    keep = active_subnns(coded, 2)
    bc = extract_binary_classifier(plain, 2, keep)
    with torch.no_grad(), remove_subnns(plain, keep):
        ref = plain(x)[:, 2:3]
    torch.testing.assert_close(bc(x), ref, rtol=1e-4, atol=1e-5)
    assert count_parameters(bc) == count_parameters(extract_binary_classifier(coded, 2))


def test_bc_errors():
    model = tiny_coded()
    for bad in (10, -1):
        with pytest.raises(ValueError, match=r'Class index .* out of range.*10 classes'):
            extract_binary_classifier(model, bad)
    with pytest.raises(ValueError, match='not blocks with subNNs'):
        extract_binary_classifier(model, 0, {'layer9.0': [0]})
    with pytest.raises(ValueError, match='no ResNeXt blocks with subNNs'):
        extract_binary_classifier(torch.nn.Linear(3, 3), 0, {'layer1.0': [0]})


def test_bc_export_torchscript_torch_export_safetensors(tmp_path):
    model = tiny_coded()
    bc = extract_binary_classifier(model, 7)
    x = torch.randn(2, 3, 32, 32)
    ref = bc(x)
    torch.testing.assert_close(torch.jit.script(bc)(x), ref)
    exported = torch.export.export(bc, (x,))
    torch.testing.assert_close(exported.module()(x), ref)
    src = randomise_bn(timm.create_model('coded_resnext29_10x11d', **TINY), 3)
    bc = extract_binary_classifier(src, 7)
    folder = save_binary_classifier(bc, str(tmp_path / 'bc7'), label_name='horse')
    assert os.path.isfile(tmp_path / 'bc7' / 'model.safetensors')
    config = json.loads((tmp_path / 'bc7' / 'config.json').read_text())
    assert config['binary_classifier']['class_index'] == 7 and config['num_classes'] == 1
    loaded = load_binary_classifier(folder)
    torch.testing.assert_close(loaded(x), bc(x))


def test_bc_prefix_split_matches_forward():
    model = tiny_imagenet_style()
    bc = extract_binary_classifier(model, 4)
    x = torch.randn(2, 3, 48, 48)
    p = bc.prefix_length()
    h = x
    for m in bc.sequence()[:p]:
        h = m(h)
    torch.testing.assert_close(bc.forward_from(h, p), bc(x))


def test_counting_flops_leaves_every_module_mode_alone():
    model = tiny_imagenet_style()  # eval mode
    count_flops(EarlyExit(model, 1), (3, 48, 48))  # EarlyExit (train mode) shares the model's modules
    assert not any(m.training for m in model.modules())


def test_bc_cost_flops():
    model = tiny_coded()
    bc = extract_binary_classifier(model, 0)
    flops_bc, flops_full = count_flops(bc, (3, 32, 32)), count_flops(model, (3, 32, 32))
    assert 0.3 < flops_bc / flops_full < 0.9


# --- binary-classifier metrics --------------------------------------------------------------------------------

def test_best_f1_threshold_and_metrics():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    positive = np.array([1, 1, 0, 1, 0, 0, 0], dtype=bool)
    t = best_f1_threshold(scores, positive)  # cut after 0.6: TP 3, FP 1 -> F1 6/7, the best
    assert t == pytest.approx(0.55)
    m = binary_metrics(scores, positive, t)
    assert (m['tp'], m['fp'], m['fn'], m['tn']) == (3, 1, 0, 3)
    assert m['precision'] == pytest.approx(0.75) and m['recall'] == 1. and m['f1'] == pytest.approx(6 / 7)
    with pytest.raises(ValueError, match='positives and negatives'):
        best_f1_threshold(scores, np.zeros(7, dtype=bool))
    pos = np.r_[np.ones(5, dtype=bool), np.zeros(100, dtype=bool)]
    keep = subsample_negatives(pos, 9, seed=0)
    assert pos[keep].sum() == 5 and (~pos[keep]).sum() == 45


# --- early decoders -------------------------------------------------------------------------------------------

def _equal_subnns(model):
    """Make every subNN of every coded block identical (same weights and BN per group)."""
    with torch.no_grad():
        for block in model.coded_blocks():
            n = block.num_subnns
            d = block.conv2.out_channels // n
            for conv in (block.conv1, block.conv2):
                w = conv.weight.view(n, d, *conv.weight.shape[1:])
                w.copy_(w[:1].expand_as(w))
            for bn in (block.bn1, block.bn2):
                for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
                    v = t.view(n, d)
                    v.copy_(v[:1].expand_as(v))
            w3 = block.conv3.weight.view(block.conv3.out_channels, n, d)
            w3.copy_(w3[:, :1].expand_as(w3))
    return model


def test_early_decoders_on_energies_constructed_to_hit_codewords():
    """Identical subNNs + per-sample removal of all but the subNNs of a chosen class's codeword: every block's
    normalised energies r*E equal that codeword exactly, so each decoder predicts the chosen class."""
    model = _equal_subnns(tiny_coded())
    target = torch.arange(20) % 10
    decoded_as = target.clone()
    decoded_as[:6] = (target[:6] + 1) % 10  # 6 of 20 samples carry another class's codeword: accuracy 0.7
    x = torch.randn(20, 3, 32, 32)
    with remove_subnns(model, codeword_masks(model, decoded_as)):
        scores = timm_coded.early_decode(model, x)
    assert len(scores) == 2 and all(s.shape == (20, 10) for s in scores)
    for s in scores:
        assert torch.equal(s.argmax(dim=1), decoded_as)
        torch.testing.assert_close(s.max(dim=1).values, torch.zeros(20), atol=1e-3, rtol=0)  # distance 0
    preds = torch.stack([s.argmax(dim=1) for s in scores])
    assert decoder_accuracy(preds, target) == pytest.approx([0.7, 0.7])


def test_agreement_table_by_hand():
    target = torch.tensor([0, 1, 2, 3])
    final = torch.tensor([0, 1, 2, 0])
    preds = torch.tensor([[0, 1, 9, 0], [0, 9, 9, 0]])  # agreements: 2, 1, 0, 2
    rows = agreement_table(preds, final, target)
    assert [(r['agree'], r['count']) for r in rows] == [(0, 1), (1, 1), (2, 2)]
    assert [r['accuracy'] for r in rows] == [1., 1., 0.5]


def test_early_exit_matches_decoder_and_stops():
    model = tiny_imagenet_style()
    x = torch.randn(3, 3, 48, 48)
    scores = timm_coded.early_decode(model, x)
    names = [n for n, _ in timm_coded.named_coded_blocks(model)]
    assert names == ['layer3.0', 'layer3.1', 'layer4.0', 'layer4.1'] and len(scores) == 4
    watched = [f'{n}.conv3' for n in names] + ['fc']
    called = []
    hooks = [m.register_forward_hook(lambda mod, a, o, n=n: called.append(n))
             for n, m in model.named_modules() if n in watched]
    for i, name in enumerate(names):
        exit_model = EarlyExit(model, name)
        assert exit_model.decoder_index == i
        called.clear()
        with torch.no_grad():
            torch.testing.assert_close(exit_model(x), scores[i], rtol=1e-4, atol=1e-5)
        assert called == [f'{n}.conv3' for n in names[:i]]  # nothing from block i's expand conv on
    for h in hooks:
        h.remove()
    flops = [count_flops(EarlyExit(model, i), (3, 48, 48)) for i in range(4)]
    assert flops == sorted(flops) and flops[-1] < count_flops(model, (3, 48, 48))
    with pytest.raises(ValueError, match='out of range'):
        EarlyExit(model, 4)
    with pytest.raises(ValueError, match='no coded blocks'):
        EarlyExit(tiny_coded(coding_ratios=('10/10',) * 3), 0)


# --- subNN removal --------------------------------------------------------------------------------------------

def test_removal_masks_are_nested_and_stay_in_their_set():
    words = torch.tensor([[1., 1., 1., 0., 0.], [0., 0., 1., 1., 1.]])
    noise = torch.rand(2, 5, generator=torch.Generator().manual_seed(0))
    prev = torch.ones(2, 5)
    for k in range(4):
        keep = removal_masks(words, k, True, noise)
        assert ((1 - keep) * (1 - words)).sum() == 0  # only active ones removed
        assert ((1 - keep).sum(dim=1) == k).all()
        assert (keep <= prev).all()
        prev = keep
    with pytest.raises(ValueError, match='Cannot remove 3 inactive'):
        removal_masks(words, 3, False, noise)


def test_removal_curves_shape():
    model = tiny_coded()
    data = [(torch.randn(8, 3, 32, 32), torch.arange(8) % 10)]
    curves = removal_curves(model, data, ['layer3.0'])
    c = curves[0]
    assert c['k_active'] == [0, 1, 2, 3] and c['k_inactive'] == list(range(8))
    assert c['accuracy_active'][0] == c['accuracy_inactive'][0]
    with torch.no_grad():
        assert c['accuracy_active'][0] == (model(data[0][0]).argmax(1) == data[0][1]).float().mean().item()


# --- calibration ----------------------------------------------------------------------------------------------

def test_ece_mce_hand_made():
    conf = torch.ones(10)
    assert calibration_errors(conf, torch.ones(10, dtype=torch.bool)) == (0., 0.)
    conf = torch.full((10,), 0.9, dtype=torch.float64)  # bin (13/15, 14/15]: accuracy 0.9
    ece, mce = calibration_errors(conf, torch.tensor([1] * 9 + [0], dtype=torch.bool))
    assert ece == pytest.approx(0., abs=1e-12) and mce == pytest.approx(0., abs=1e-12)
    conf = torch.tensor([0.95] * 4 + [0.55] * 6, dtype=torch.float64)
    correct = torch.tensor([0] * 4 + [1, 1, 1, 0, 0, 0], dtype=torch.bool)
    ece, mce = calibration_errors(conf, correct)
    assert ece == pytest.approx(0.4 * 0.95 + 0.6 * 0.05) and mce == pytest.approx(0.95)
    # the upper edge belongs to the bin: 1/15 and 0.05 share bin 1, 2/15 is in bin 2
    conf = torch.tensor([1 / 15, 0.05, 2 / 15], dtype=torch.float64)
    ece, mce = calibration_errors(conf, torch.tensor([True, False, False]), num_bins=15)
    assert ece == pytest.approx((2 / 3) * abs(0.5 - (1 / 15 + 0.05) / 2) + (1 / 3) * (2 / 15))
    assert mce == pytest.approx(max(abs(0.5 - (1 / 15 + 0.05) / 2), 2 / 15))


def test_h_aug_with_zero_tau_equals_h_t():
    z = torch.randn(50, 7, dtype=torch.float64) * 3
    agree = (torch.rand(50, 4) > 0.5).double()
    for t in (0.5, 1., 2.3):
        temp = torch.tensor([t], dtype=torch.float64)
        torch.testing.assert_close(scaled_log_probs(z, temp, torch.zeros(4, dtype=torch.float64), agree),
                                   scaled_log_probs(z, temp))
    # with tau fixed at 0 (no decoder ever agrees) fitting h_aug is fitting h_T
    labels = torch.randint(0, 7, (50,))
    h_t = fit_calibration(z, labels, iterations=100)
    h_aug = fit_calibration(z, labels, torch.zeros(50, 4), iterations=100)
    assert h_aug['temperature'] == pytest.approx(h_t['temperature']) and h_aug['tau'] == [0.] * 4


def test_temperature_fit_recovers_known_temperature():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(3000, 10, generator=gen, dtype=torch.float64) * 4
    labels = torch.multinomial(F.softmax(z / 2., dim=1), 1, generator=gen).squeeze(1)
    h_t = fit_calibration(z, labels)  # paper's settings: T = 1, lr 0.1, 600 iterations
    assert h_t['temperature'] == pytest.approx(2., abs=0.15)


def test_stratified_split_keeps_class_shares():
    labels = np.repeat(np.arange(4), 40)
    fit, test = stratified_split(labels, 0.25, np.random.default_rng(0))
    assert len(np.intersect1d(fit, test)) == 0 and len(fit) + len(test) == 160
    assert (np.bincount(labels[fit]) == 10).all()


# --- loading errors -------------------------------------------------------------------------------------------

def test_checkpoint_codebook_mismatch_is_a_clear_error(tmp_path):
    from timm_coded.checkpoint import model_from_checkpoint
    model = timm.create_model('coded_resnext29_10x11d', **TINY)
    path = str(tmp_path / 'ckpt.pth.tar')
    torch.save({'arch': 'coded_resnext29_10x11d', 'state_dict': model.state_dict(), 'epoch': 0, 'version': 2}, path)
    other = model.coding_schemes()['r3_10'].codewords[::-1].copy()  # same codewords, classes permuted
    with pytest.raises(ValueError, match='Codebook mismatch for ratio 3/10: class 0: checkpoint 1001001000, model '
                                         '1100000010'):
        model_from_checkpoint(path, 'coded_resnext29_10x11d', dict(TINY, codebooks={'3/10': other}))
    with pytest.raises(ValueError, match='do not fit'):
        model_from_checkpoint(path, 'coded_resnext29_10x11d', dict(TINY, base_width=8))
    loaded, _, _ = model_from_checkpoint(path, 'coded_resnext29_10x11d', TINY)
    torch.testing.assert_close(loaded.fc.weight, model.fc.weight)


def test_checkpoint_rebuilds_the_trained_coding_ratios(tmp_path):
    """A run with --coding-ratios / --drop-subnn (stored in the checkpoint's args) comes back with those ratios."""
    from timm_coded.checkpoint import model_from_checkpoint
    model = timm.create_model('coded_resnext29_10x11d', **dict(TINY, coding_ratios=('10/10', '4/10', '2/10')),
                              drop_subnn_rate=0.2)
    path = str(tmp_path / 'ckpt.pth.tar')
    args = argparse.Namespace(model='coded_resnext29_10x11d', model_kwargs=TINY,
                              coding_ratios=['10/10', '4/10', '2/10'],
                              drop_subnn=0.2, num_classes=None, in_chans=None, input_size=None)
    torch.save({'arch': 'coded_resnext29_10x11d', 'state_dict': model.state_dict(), 'args': args}, path)
    loaded, _, _ = model_from_checkpoint(path)
    assert loaded.coding_ratios == ('10/10', '4/10', '2/10')
    assert loaded.coded_blocks()[0].subnn_drop.rate == 0.2
    torch.testing.assert_close(loaded.codebooks.get('r2_10'), model.codebooks.get('r2_10'))


# --- trained on Fashion-MNIST: the CLI report -----------------------------------------------------------------

@pytest.mark.slow
def test_cli_full_report_on_fashion_mnist(trained):
    pytest.importorskip('sklearn', reason='the digits OOD set ships with scikit-learn (extra [plots])')
    out = trained.root / 'report'
    cmd = [sys.executable, '-m', 'timm_coded.analyze', '--checkpoint', str(trained.coded), '--dataset', 'fashion_mnist',
           '--baseline-model', 'resnext29_10x11d', '--baseline-checkpoint', str(trained.plain),
           '--train-samples', '300', '--max-samples', '300', '--calibration-repeats', '2', '--output', str(out)]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (out / 'report.md').read_text()
    for section in ('## Binary classifiers', '## Early decoders', '## SubNN removal', '## Calibration'):
        assert section in report
    from PIL import Image
    for png in ('bc_distributions', 'precision_recall', 'early_decoders', 'removal', 'reliability'):
        assert f'({png}.png)' in report
        with Image.open(out / f'{png}.png') as im:
            assert im.size[0] > 300 and im.size[1] > 200
        json.loads((out / 'figures' / f'{png}.json').read_text())
    res = json.loads((out / 'results.json').read_text())
    assert res['meta']['data_config']['input_size'] == [1, 28, 28]  # preprocessing read from the checkpoint args
    assert res['accuracy'] > 0.6 and res['baseline_accuracy'] > 0.6
    bc = res['binary_classifiers']
    assert bc['mean']['coded']['val']['f1'] > 0.5
    assert set(bc['mean']) == {'coded', 'full_logit', 'plain', 'plain_full_logit'}
    assert set(bc['classes'][0]['coded']) >= {'threshold', 'val', 'val_1to9', 'ood'}
    assert res['samples']['ood'] == 300
    assert 0.3 < bc['cost']['param_share'] < 0.8 and 0.3 < bc['cost']['flop_share'] < 0.9
    ed = res['early_decoders']
    assert ed['blocks'] == ['layer2.0', 'layer3.0'] and max(ed['accuracy']) > 0.4
    shares = [e['flop_share'] for e in ed['early_exit']]
    assert shares == sorted(shares) and shares[-1] < 1.
    assert sum(r['count'] for r in ed['agreement']) == res['samples']['test']
    assert [c['block'] for c in res['removal']] == ['layer2.0', 'layer3.0']
    assert [s['fit_fraction'] for s in res['calibration']['splits']] == [0.25, 0.5]

    from train_hooks.main_job import write_report  # the main job's README leads with the gap, from these results
    job = trained.root / 'main_job'
    job.mkdir()
    lead = write_report(job, res, {'total': 60.}, 'cpu', 1.).read_text().split('## What the coding buys')[1]
    mean = {k: v['val']['f1'] for k, v in bc['mean'].items()}
    assert lead.index('Binary classifiers') < lead.index('SubNN removal') < lead.index('Early decoders')
    assert f'gap of **{mean["coded"] - mean["plain"]:+.3f}** F1' in lead
    assert f'keeps **{100 * mean["coded"] / mean["full_logit"]:.1f} %** of the coded' in lead
    assert f'{100 * mean["plain"] / mean["plain_full_logit"]:.1f} % of the plain' in lead


@pytest.mark.slow
def test_cli_errors(trained, tmp_path):
    from timm_coded.analyze.__main__ import main
    with pytest.raises(ValueError, match='trained as'):
        main(['--model', 'coded_resnext29_20x6d', '--checkpoint', str(trained.coded), '--dataset', 'fashion_mnist',
              '--output', str(tmp_path)])
    with pytest.raises(ValueError, match=r'Class index 12 is out of range'):
        main(['--checkpoint', str(trained.coded), '--dataset', 'fashion_mnist', '--classes', '12',
              '--max-samples', '20', '--output', str(tmp_path)])
    with pytest.raises(ValueError, match='no coded blocks'):
        main(['--checkpoint', str(trained.plain), '--dataset', 'fashion_mnist', '--max-samples', '20',
              '--ood-dataset', 'none', '--output', str(tmp_path)])


class _Opens:
    """Unpickling this object would create the file `path`: a stand-in for code hidden in a checkpoint."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return open, (self.path, 'w')


@pytest.mark.slow
def test_cli_refuses_unsafe_and_truncated_checkpoints_in_one_line(trained, tmp_path):
    marker = tmp_path / 'code-ran'
    ckpt = torch.load(trained.coded, weights_only=False)
    torch.save(dict(ckpt, extra=_Opens(str(marker))), tmp_path / 'unsafe.pth.tar')
    data = open(trained.coded, 'rb').read()
    (tmp_path / 'truncated.pth.tar').write_bytes(data[:len(data) // 2])
    for name, message in (('unsafe', 'holds pickled objects outside the allow-list (io.open)'),
                          ('truncated', 'Corrupt or truncated checkpoint')):
        out = tmp_path / f'report-{name}'
        proc = subprocess.run([sys.executable, '-m', 'timm_coded.analyze', '--checkpoint',
                               str(tmp_path / f'{name}.pth.tar'), '--dataset', 'fashion_mnist', '--output', str(out)],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode != 0 and 'Traceback' not in proc.stderr, proc.stderr[-2000:]
        assert proc.stderr.strip().splitlines()[-1].startswith('error: ') and message in proc.stderr
        assert not out.exists() and not marker.exists()
