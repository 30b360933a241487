"""train_hooks.train on XLA:CPU (PJRT_DEVICE=CPU): one device, SPMD over 2 devices, and the ImageNet@160 recipe.

Each run records, after every step, torch_xla.debug.metrics' compile count ('CompileTime') and device-to-host
transfer count ('TransferFromDeviceTime') (`--xla-metrics`); the tests assert that compilation stops after the
first steps and that only logging steps and the end of an epoch read tensors back to the host.
"""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from timm_coded.data import FashionMNIST

from helpers import ROOT
from helpers.data import needs_fashion_mnist as needs_data

pytestmark = [pytest.mark.xla, pytest.mark.slow]

# The Fashion-MNIST recipe on 100 training images (3 steps of 32) and 50 test images (2 padded batches of 32).
FASHION = ['--config', 'fashion_mnist', '--train-per-class', '10', '--val-per-class', '5', '-b', '32', '-vb', '32',
           '--epochs', '2', '--warmup-epochs', '1', '--model-ema', '-j', '0', '--log-interval', '100', '--seed', '3',
           '--device', 'xla', '--xla-metrics']


def _run(args, out, devices: int, timeout: int = 540) -> str:
    env = dict(os.environ, PJRT_DEVICE='CPU', CPU_NUM_DEVICES=str(devices),
               PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.run([sys.executable, '-m', 'train_hooks.train', *args, '--output', str(out)], cwd=str(out),
                          env=env, capture_output=True, text=True, timeout=timeout)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    return log


def _steps(run_dir) -> list:
    with open(os.path.join(run_dir, 'xla_metrics.json')) as f:
        return json.load(f)['steps']


def _summary(run_dir) -> list:
    with open(os.path.join(run_dir, 'summary.csv')) as f:
        return list(csv.DictReader(f))


def _assert_no_recompile_no_host_sync(steps: list) -> None:
    train0 = [s for s in steps if s['phase'] == 'train' and s['epoch'] == 0]
    assert len(train0) == 3
    # compilation stops after the first two steps (the optimizer's momentum buffers appear in step 2) ...
    assert train0[1]['compiles'] == train0[2]['compiles'], train0
    # ... and nothing compiles after the first epoch (training, evaluation, EMA evaluation all cached)
    end_of_first = [s for s in steps if s['epoch'] == 0][-1]['compiles']
    later = [s for s in steps if s['epoch'] >= 1]
    assert later and all(s['compiles'] == end_of_first for s in later), steps
    # a step that does not log reads nothing back to the host
    for prev, cur in zip(steps, steps[1:]):
        same_pass = (cur['phase'], cur['epoch'], cur['batch']) == (prev['phase'], prev['epoch'], prev['batch'] + 1)
        if same_pass and not cur['logged']:
            assert cur['transfers_from_device'] == prev['transfers_from_device'], (prev, cur)
    logged = [s for s in steps if s['logged']]
    assert [(s['epoch'], s['batch']) for s in logged] == [(0, 0), (0, 2), (1, 0), (1, 2)]


def _assert_checkpoint_on_cpu(run_dir) -> None:
    import argparse
    with torch.serialization.safe_globals([argparse.Namespace]):
        ckpt = torch.load(os.path.join(run_dir, 'last.pth.tar'), weights_only=True)  # no map_location
    tensors = list(ckpt['state_dict'].values()) + list(ckpt['state_dict_ema'].values())
    tensors += [v for s in ckpt['optimizer']['state'].values() for v in s.values() if torch.is_tensor(v)]
    assert tensors and all(t.device.type == 'cpu' for t in tensors)
    assert ckpt['epoch'] == 1


@pytest.fixture(scope='module')
def one_device_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('xla1')
    log = _run(FASHION + ['--experiment', 'one'], out, devices=1)
    return log, os.path.join(out, 'one')


@needs_data
def test_xla_one_device_fashion_mnist(one_device_run):
    log, run_dir = one_device_run
    assert 'XLA device xla:0 (CPU), 1 device(s) on the host, SPMD data parallel: off' in log
    assert 'Test: 50 images' in log and 'Test (EMA): 50 images' in log  # padding of the last batch not counted
    _assert_no_recompile_no_host_sync(_steps(run_dir))
    _assert_checkpoint_on_cpu(run_dir)
    rows = _summary(run_dir)
    assert len(rows) == 2 and float(rows[1]['train_coding_loss']) > 0


@needs_data
def test_xla_spmd_two_devices_fashion_mnist(one_device_run, tmp_path):
    log = _run(FASHION + ['--experiment', 'spmd'], tmp_path, devices=2)
    run_dir = os.path.join(tmp_path, 'spmd')
    assert '2 device(s) on the host, SPMD data parallel: on' in log
    assert 'Test: 50 images' in log
    _assert_no_recompile_no_host_sync(_steps(run_dir))
    _assert_checkpoint_on_cpu(run_dir)
    # the host batch sharded over 2 devices computes what one device computes on the whole batch
    one, spmd = _summary(one_device_run[1])[0], _summary(run_dir)[0]
    for key in ('train_loss', 'train_class_loss', 'train_coding_loss'):
        assert float(spmd[key]) == pytest.approx(float(one[key]), rel=2e-3), key


def _tiny_image_folder(root: str, train_per_class: int, val_per_class: int) -> None:
    """Real images (Fashion-MNIST, upscaled to 96 px RGB PNGs) in an ImageNet-style folder: root/{train,validation}/c."""
    ds = FashionMNIST(split='train')
    for split, per_class, offset in (('train', train_per_class, 0), ('validation', val_per_class, 100)):
        for c in (0, 1):
            folder = os.path.join(root, split, f'class{c}')
            os.makedirs(folder)
            for i in np.flatnonzero(ds.targets == c)[offset:offset + per_class]:
                img = Image.fromarray(ds.images[i]).convert('RGB').resize((96, 96), Image.BICUBIC)
                img.save(os.path.join(folder, f'{i}.png'))


@needs_data
def test_imagenet_160_recipe_two_steps_then_eval_at_224(tmp_path):
    """The paper's ImageNet recipe (coded_resnext50_32x4d, RandAugment, random erasing, bf16 autocast) runs two
    training steps at 160 px on XLA:CPU and evaluates at 224 px. Batch 2 and lr 0.6 * 2 / 1536 (linear scaling)
    instead of 1536 / 0.6, so the run fits the CPU."""
    data = os.path.join(tmp_path, 'tiny_imagenet')
    _tiny_image_folder(data, train_per_class=2, val_per_class=2)
    log = _run(['--config', 'imagenet_160', '--data-dir', data, '--num-classes', '2', '-b', '2', '-vb', '2',
                '--lr', str(0.6 * 2 / 1536), '--epochs', '1', '--cooldown-epochs', '0', '--warmup-epochs', '0',
                '-j', '0', '--log-interval', '1', '--device', 'xla', '--xla-metrics', '--experiment', 'in160'],
               tmp_path, devices=1)
    assert 'Model coded_resnext50_32x4d: ' in log and '9 coded blocks, train (3, 160, 160) / eval (3, 224, 224)' in log
    assert 'Train: 0 [    1/2 (100%)]' in log and 'Test: 4 images' in log
    run_dir = os.path.join(tmp_path, 'in160')
    steps = _steps(run_dir)
    assert [(s['phase'], s['batch']) for s in steps] == [('train', 0), ('train', 1), ('eval', 0), ('eval', 1)]
    with open(os.path.join(run_dir, 'args.yaml')) as f:
        args = f.read()
    for line in ('aa: rand-m7-n2-mstd0.5-inc1', 'reprob: 0.4', 'recount: 3', 'amp: true', 'amp_dtype: bfloat16',
                 'coding_loss_weight: 2.0', 'drop_subnn: 0.1'):
        assert line in args
    rows = _summary(run_dir)
    assert len(rows) == 1 and np.isfinite(float(rows[0]['eval_loss']))
