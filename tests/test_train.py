"""train_hooks.train on real Fashion-MNIST: eager CPU, torchrun DDP over 2 gloo processes, and a run killed with
SIGKILL mid-epoch then continued with --resume, which must end where an uninterrupted run ends."""
import csv
import logging
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from timm_coded.checkpoint import read_checkpoint

from helpers import ROOT
from helpers.data import needs_fashion_mnist

# A narrow Coded ResNeXt on a class-balanced Fashion-MNIST subset, one channel, 28 px.
TINY = [
    '--dataset', 'fashion_mnist', '--model', 'coded_resnext29_10x11d',
    '--model-kwargs', 'layers=(1,1,1)', 'channels=(16,32,64)', 'base_width=16',
    '--in-chans', '1', '--img-size', '28', '--pad-crop', '2', '--smoothing', '0',
    '--opt', 'sgd', '--lr', '0.05', '--weight-decay', '5e-4', '--warmup-epochs', '1', '--warmup-lr', '0.01',
    '--device', 'cpu', '--log-interval', '1',
]


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    env.pop('TIMM_CODED_MU', None)
    return env


def _train_cmd(*args: str) -> list:
    return [sys.executable, '-m', 'train_hooks.train', *TINY, *args]


def _summary(path: str) -> list:
    with open(os.path.join(path, 'summary.csv')) as f:
        return list(csv.DictReader(f))


@needs_fashion_mnist
def test_cpu_few_steps_logs_coded_metrics_and_checkpoints(tmp_path, caplog):
    """Eager CPU, in-process: summary has the coded columns, checkpoints follow timm's CheckpointSaver layout,
    every log line shows its interval's losses."""
    from train_hooks.train import main
    with caplog.at_level(logging.INFO):
        result = main(TINY + ['--train-per-class', '6', '--val-per-class', '3', '-b', '20', '-vb', '16',
                              '--epochs', '2', '-j', '0', '--model-ema', '--output', str(tmp_path), '--experiment',
                              'cpu'])
    step_lines = [r.getMessage() for r in caplog.records if re.match(r'Train: \d+ \[', r.getMessage())]
    assert len(step_lines) == 6  # --log-interval 1: every one of the 3 batches of each epoch
    for line in step_lines:
        loss, class_loss = (float(re.search(rf'{k} ([0-9.]+)', line).group(1)) for k in ('loss', 'class'))
        assert loss > class_loss > 0.5, line  # an untrained 10-class net: each interval has its own losses
    out = result['output_dir']
    assert sorted(f for f in os.listdir(out) if f.endswith('.pth.tar')) == [
        'checkpoint-0.pth.tar', 'checkpoint-1.pth.tar', 'last.pth.tar', 'model_best.pth.tar']
    rows = _summary(out)
    assert [r['epoch'] for r in rows] == ['0', '1']
    for key in ('train_loss', 'train_class_loss', 'train_coding_loss', 'train_coding_loss_layer2.0',
                'train_coding_loss_layer3.0', 'train_dec_acc_layer2.0', 'train_dec_acc_layer3.0', 'eval_top1',
                'eval_dec_acc_layer3.0', 'eval_ema_top1', 'lr'):
        assert key in rows[0], key
    for r in rows:  # Eq. 6: loss = class + mu * coding with mu = 6 (CIFAR stem default)
        assert float(r['train_loss']) == pytest.approx(
            float(r['train_class_loss']) + 6 * float(r['train_coding_loss']), rel=1e-4)
        assert float(r['train_coding_loss']) == pytest.approx(
            float(r['train_coding_loss_layer2.0']) + float(r['train_coding_loss_layer3.0']), rel=1e-4)
    assert float(rows[0]['lr']) == pytest.approx(0.01)  # warm-up epoch
    ckpt = read_checkpoint(os.path.join(out, 'last.pth.tar'))
    assert ckpt['epoch'] == 1 and ckpt['version'] == 2
    assert {'state_dict', 'state_dict_ema', 'optimizer', 'train_state', 'args', 'saver'} <= set(ckpt)
    assert ckpt['train_state']['scheduler']['t_initial'] == 2 and ckpt['train_state']['amp_scaler'] is None
    assert all(t.device.type == 'cpu' for t in ckpt['state_dict'].values())
    assert result['last_eval']['top1'] >= 0 and 'dec_acc_layer2.0' in result['last_eval']


@pytest.mark.slow
@needs_fashion_mnist
def test_ddp_two_gloo_processes(tmp_path):
    """torchrun, 2 CPU processes (gloo): training runs and the padded distributed evaluation sees each image once."""
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
           '-m', 'train_hooks.train', *TINY, '--train-per-class', '4', '--val-per-class', '3', '-b', '8', '-vb', '8',
           '--epochs', '1', '--warmup-epochs', '0', '-j', '0', '--output', str(tmp_path), '--experiment', 'ddp']
    proc = subprocess.run(cmd, cwd=str(tmp_path), env=_env(), capture_output=True, text=True, timeout=240)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert 'Distributed training (DDP, gloo): process 0 of 2' in log
    assert 'Distributed training (DDP, gloo): process 1 of 2' in log
    # 30 validation images padded to 32 (2 ranks x batch 8 x 2 batches): the 2 padding images are not counted
    assert 'Test: 30 images' in log, log[-3000:]
    assert 'global batch 16' in log  # 2 processes x -b 8
    rows = _summary(os.path.join(tmp_path, 'ddp'))
    assert len(rows) == 1 and float(rows[0]['train_coding_loss']) > 0


def _state(path: str) -> dict:
    ckpt = read_checkpoint(path)
    momentum = {k: v['momentum_buffer'] for k, v in ckpt['optimizer']['state'].items()}
    return dict(epoch=ckpt['epoch'], model=ckpt['state_dict'], ema=ckpt['state_dict_ema'], momentum=momentum,
                lr=ckpt['optimizer']['param_groups'][0]['lr'])


@pytest.mark.slow
@needs_fashion_mnist
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path):
    """Kill -9 during epoch 1, --resume from last.pth.tar (end of epoch 0): the resumed run repeats epoch 1 from its
    first batch with the same data order / augmentation / dropSubNNs and ends in the uninterrupted run's state."""
    common = ['--train-per-class', '12', '--val-per-class', '2', '-b', '24', '-vb', '20', '--epochs', '3',
              '--model-ema', '--model-ema-decay', '0.9', '-j', '1', '--seed', '7', '--output', str(tmp_path)]
    full = subprocess.run(_train_cmd(*common, '--experiment', 'full'), cwd=str(tmp_path), env=_env(),
                          capture_output=True, text=True, timeout=240)
    assert full.returncode == 0, (full.stdout + full.stderr)[-3000:]

    cmd = _train_cmd(*common, '--experiment', 'killed')
    proc = subprocess.Popen(cmd, cwd=str(tmp_path), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines, deadline = [], time.time() + 240
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith('Train: 1 [    2/5'):  # three of five steps of epoch 1 done
                proc.send_signal(signal.SIGKILL)
                break
            assert time.time() < deadline, ''.join(lines[-30:])
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, ''.join(lines[-30:])
    killed_dir = os.path.join(tmp_path, 'killed')
    assert _state(os.path.join(killed_dir, 'last.pth.tar'))['epoch'] == 0  # intact, from the last completed epoch
    assert not [f for f in os.listdir(killed_dir) if f.endswith('.partial')]

    resumed = subprocess.run(
        _train_cmd(*common, '--experiment', 'killed', '--resume', os.path.join(killed_dir, 'last.pth.tar')),
        cwd=str(tmp_path), env=_env(), capture_output=True, text=True, timeout=240)
    log = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, log[-3000:]
    assert 'Scheduled epochs: 3 (from epoch 1)' in log

    a = _state(os.path.join(tmp_path, 'full', 'last.pth.tar'))
    b = _state(os.path.join(killed_dir, 'last.pth.tar'))
    assert a['epoch'] == b['epoch'] == 2 and a['lr'] == b['lr']
    for part in ('model', 'ema', 'momentum'):
        assert a[part].keys() == b[part].keys()
        for key in a[part]:
            torch.testing.assert_close(b[part][key], a[part][key], rtol=1e-5, atol=1e-6, msg=f'{part} {key}')
    full_rows, resumed_rows = _summary(os.path.join(tmp_path, 'full')), _summary(killed_dir)
    assert [r['epoch'] for r in resumed_rows] == ['0', '1', '2']  # the interrupted epoch is not duplicated
    for ra, rb in zip(full_rows, resumed_rows):
        assert float(rb['train_loss']) == pytest.approx(float(ra['train_loss']), rel=1e-5)
        assert float(rb['eval_top1']) == pytest.approx(float(ra['eval_top1']))


@needs_fashion_mnist
@pytest.mark.parametrize('loader', ['prefetcher', 'no-prefetcher'])
def test_cpu_mixup_cutmix_soft_targets_and_grad_accum(tmp_path, loader):
    """Mixup / CutMix soft targets reach the coding loss (timm's FastCollateMixup with the prefetcher, Mixup in the
    collate without it), with gradient accumulation over 2 batches."""
    from train_hooks.train import main
    extra = ['--no-prefetcher'] if loader == 'no-prefetcher' else []
    result = main(TINY + extra + ['--train-per-class', '4', '--val-per-class', '1', '-b', '8', '--grad-accum-steps',
                                  '2', '--mixup', '0.4', '--cutmix', '1.0', '--smoothing', '0.1', '--epochs', '1',
                                  '--warmup-epochs', '0', '-j', '0', '--output', str(tmp_path), '--experiment', loader])
    row = _summary(result['output_dir'])[0]
    assert float(row['train_coding_loss']) > 0 and 0 <= float(row['train_dec_acc_layer3.0']) <= 100
    assert float(row['train_loss']) == pytest.approx(
        float(row['train_class_loss']) + 6 * float(row['train_coding_loss']), rel=1e-4)


@needs_fashion_mnist
def test_cpu_baseline_without_coded_blocks_uses_timm_task(tmp_path):
    """--coding-ratios 10/10 10/10 10/10 turns the net into the plain ResNeXt baseline: timm's ClassificationTask."""
    from train_hooks.train import main
    result = main(TINY + ['--coding-ratios', '10/10', '10/10', '10/10', '--train-per-class', '2', '--val-per-class',
                          '1', '-b', '10', '--epochs', '1', '--warmup-epochs', '0', '-j', '0', '--output', str(tmp_path),
                          '--experiment', 'base'])
    row = _summary(result['output_dir'])[0]
    assert 'train_loss' in row and 'eval_top1' in row and not any('coding' in k or 'dec_acc' in k for k in row)


def _run(cmd: list, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=str(tmp_path), env=_env(), capture_output=True, text=True, timeout=240)


@pytest.mark.slow
@needs_fashion_mnist
def test_command_line_errors_are_one_line_and_write_nothing(tmp_path):
    """Bad input ends in one 'error: ...' line naming the problem and the fix, exit code != 0, no traceback, and no
    output folder; the comma form of --coding-ratios is accepted."""
    from timm_coded import CodedResNeXt
    out = tmp_path / 'out'
    good = tmp_path / 'good.pth'
    torch.save(CodedResNeXt(**dict(layers=(1, 1, 1), channels=(16, 32, 64), base_width=16, cardinality=10,
                                   stem_type='cifar', in_chans=1, num_classes=10,
                                   coding_ratios='10/10,5/10,3/10')).state_dict(), good)
    truncated = tmp_path / 'truncated.pth.tar'
    truncated.write_bytes(good.read_bytes()[:good.stat().st_size // 2])
    common = ['--epochs', '1', '--train-per-class', '2', '--val-per-class', '1', '-b', '4', '-j', '0',
              '--output', str(out)]
    cases = [
        (['--data-dir', '/no/such/dir'], '--data-dir /no/such/dir: no such folder'),
        (['--device', 'xla'], '--device xla needs torch_xla'),
        (['--coding-ratios', '10/10,13/10,3/10'], "Coding ratio '13/10' gives N_act = 13, outside 1..10"),
        (['--resume', str(truncated)], f'Corrupt or truncated checkpoint {truncated}'),
        (['--initial-checkpoint', str(truncated)], f'Corrupt or truncated checkpoint {truncated}'),
    ]
    for extra, message in cases:
        proc = _run(_train_cmd(*common, *extra), tmp_path)
        assert proc.returncode != 0, extra
        assert 'Traceback' not in proc.stderr and proc.stderr.strip().splitlines()[-1].startswith('error: '), (
            extra, proc.stderr[-2000:])
        assert message in proc.stderr, (extra, proc.stderr[-2000:])
        assert not out.exists(), extra
    proc = _run(_train_cmd(*common, '--coding-ratios', '10/10,5/10,3/10', '--initial-checkpoint', str(good),
                           '--experiment', 'comma'), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_checkpoint(out / 'comma' / 'last.pth.tar')['args']['coding_ratios'] == ['10/10,5/10,3/10']


@needs_fashion_mnist
@pytest.mark.parametrize('model', ['coded_resnext23_10x4d', 'resnext23_10x4d'])
def test_fashion_mnist_paper_recipe_builds_and_trains(tmp_path, model):
    """The study's recipe and its models: one short epoch, the coded net with the coding loss of its 7 blocks
    (stage 1 coded too), the baseline with every ratio N/N as the README's command gives it."""
    from train_hooks.train import main
    plain = [] if model.startswith('coded') else ['--coding-ratios', '10/10', '10/10', '10/10']
    result = main(['--config', 'fashion_mnist_paper', '--model', model, '--train-per-class', '2', '--val-per-class',
                   '1', '-b', '10', '--epochs', '1', '--warmup-epochs', '0', '-j', '0', '--output', str(tmp_path),
                   '--experiment', model, *plain])
    row = _summary(result['output_dir'])[0]
    coded = [k for k in row if k.startswith('train_coding_loss_')]
    assert coded == (['train_coding_loss_layer1.0'] + [f'train_coding_loss_layer{s}.{i}' for s in (2, 3)
                                                        for i in range(3)] if model.startswith('coded') else [])
    assert float(row['train_loss']) > 0 and float(row['eval_top1']) >= 0
    ckpt = read_checkpoint(os.path.join(result['output_dir'], 'last.pth.tar'))
    assert ckpt['args']['model'] == model and ckpt['args']['in_chans'] == 1
