""" The main job: what Coded ResNeXt does that a plain ResNeXt does not, end to end, offline, on a CPU.

    python -m train_hooks.main_job [--output output/main_job] [--device auto] [--scale 1.0]

Every stage is the project's own command line, run as a subprocess: `train_hooks.train` trains
`coded_resnext23_10x4d` and its plain baseline `resnext23_10x4d` by the `fashion_mnist_paper` recipe on a shorter
schedule (side by side on a CPU; on a GPU one after the other, on more data for longer: `--scale`);
`timm_coded.analyze` measures the pair on the whole test split; `hub_cards.push --dry-run` writes the coded model's
Hub export. `README.md` in the output folder leads with the binary-classifier gap and the removal result.
"""
import argparse
import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import torch

from timm_coded.data import FASHION_MNIST_CLASSES, find_fashion_mnist

CODED, BASELINE = 'coded_resnext23_10x4d', 'resnext23_10x4d'
REPO_ID = 'timm-coded/coded_resnext23_10x4d.fashion_mnist'
PER_CLASS, EPOCHS = 1000, 5  # scale 1: the budget that fits about a quarter of an hour on 2 CPU cores
CPU_BATCH = 32  # at this budget smaller steps train further than the recipe's 128 (BENCHMARKS.md)
CPU_RATIOS = ('10/10', '5/10', '3/10')  # stage 1 uncoded on CPU: its BCs would push the analysis past 15 minutes
PLAIN_RATIOS = ('10/10',) * 3  # the baseline: every subNN of every block, whatever the recipe codes


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog='python -m train_hooks.main_job', description=__doc__.split('\n\n')[0])
    p.add_argument('--output', default='output/main_job', help='folder for everything the job writes')
    p.add_argument('--device', default='auto', help="'auto' (cuda if present, else cpu), 'cpu' or 'cuda'")
    p.add_argument('--data-dir', default=None, help='Fashion-MNIST IDX files (default: Debian package folder)')
    p.add_argument('--scale', type=float, default=None, help='multiplier of the training images per class and of '
                   'the epochs (up to 3x); default 1 on CPU, 6 on GPU (the whole training set)')
    p.add_argument('--download', action='store_true',
                   help='download Fashion-MNIST with torchvision when the Debian files are missing (needs network)')
    return p.parse_args(argv)


def locate_data(data_dir: Optional[str], download: bool, cache: Path) -> str:
    """Folder with the Fashion-MNIST IDX files; torchvision download only when asked and nothing is local."""
    try:
        return find_fashion_mnist(data_dir)
    except FileNotFoundError as missing:
        if not download:
            raise SystemExit(f'error: {missing}\nOr re-run with --download to fetch it with torchvision '
                             f'(needs network).')
    import torchvision
    for train in (True, False):
        torchvision.datasets.FashionMNIST(str(cache), train=train, download=True)
    return find_fashion_mnist(str(cache / 'FashionMNIST' / 'raw'))


def run_stages(stages: Dict[str, List[str]], log_dir: Path, timings: Dict[str, float], threads: int = 0) -> None:
    """Run command lines side by side (each with `threads` torch threads if > 0), output in <log_dir>/<name>.log;
    a failure stops the job with the end of its log."""
    procs = {}
    env = dict(os.environ, **({'OMP_NUM_THREADS': str(threads)} if threads else {}))
    for name, cmd in stages.items():
        print(f'== {name}: {shlex.join(cmd)}', flush=True)
        log = open(log_dir / f'{name}.log', 'w')
        procs[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log, time.time())
    for name, (proc, log, start) in procs.items():
        rc = proc.wait()
        log.close()
        timings[name] = time.time() - start
        if rc != 0:
            tail = (log_dir / f'{name}.log').read_text().splitlines()[-30:]
            raise SystemExit(f'error: {name} failed (exit {rc}); last lines of {log_dir / name}.log:\n'
                             + '\n'.join(tail))
        print(f'   {name} done in {timings[name] / 60:.1f} min', flush=True)


def train_cmd(model: str, out: Path, device: str, data_dir: str, scale: float) -> List[str]:
    """The training command of one model: the `fashion_mnist_paper` recipe at the job's budget (on CPU with the
    model's default ratios, stage 1 uncoded; the baseline with every ratio N/N)."""
    per_class = min(6000, int(round(PER_CLASS * scale)))
    epochs = max(2, int(round(EPOCHS * min(scale, 3))))
    cmd = [sys.executable, '-m', 'train_hooks.train', '--config', 'fashion_mnist_paper', '--model', model,
           '--data-dir', data_dir, '--device', device, '--output', str(out), '--experiment', model,
           '--train-per-class', str(per_class), '--epochs', str(epochs), '--workers', '0' if device == 'cpu' else '4']
    if model == BASELINE or device == 'cpu':
        cmd += ['--coding-ratios', *(PLAIN_RATIOS if model == BASELINE else CPU_RATIOS)]
    return cmd + (['--batch-size', str(CPU_BATCH)] if device == 'cpu' else [])


def export_command(checkpoint: Path, metrics: Path, out: Path) -> List[str]:
    """The Hub export stage: `python -m hub_cards.push --dry-run` with the measured metrics and class names."""
    return [sys.executable, '-m', 'hub_cards.push', '--checkpoint', str(checkpoint), '--repo-id', REPO_ID,
            '--dry-run', str(out), '--metrics', str(metrics), '--label-names', ','.join(FASHION_MNIST_CLASSES)]


def card_metrics(res: Dict) -> Dict:
    """The Hub card's metrics (hub_cards.card schema, percent), all measured by this run."""
    pct = lambda v: round(100 * v, 2)  # noqa: E731
    mean, dec = res['binary_classifiers']['mean'], res['early_decoders']
    return {'dataset': 'fashion_mnist', 'split': 'test', 'num_samples': res['samples']['test'],
            'top1': pct(res['accuracy']), 'early_decoders': dict(zip(dec['blocks'], map(pct, dec['accuracy']))),
            'binary_classifiers': {'mean': {k: pct(mean['coded']['val'][k]) for k in ('precision', 'recall', 'f1')}},
            'notes': 'Measured by the timm-coded main job on the whole Fashion-MNIST test split; binary-classifier '
                     'thresholds chosen on training images.'}


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    out = Path(args.output).resolve()
    logs = out / 'logs'
    logs.mkdir(parents=True, exist_ok=True)
    device = ('cuda' if torch.cuda.is_available() else 'cpu') if args.device == 'auto' else args.device
    scale = args.scale if args.scale is not None else (6. if device == 'cuda' else 1.)
    data_dir = locate_data(args.data_dir, args.download, out / 'data')
    print(f'timm-coded main job -> {out}\n   device {device}, Fashion-MNIST from {data_dir}, scale {scale:g}')
    timings: Dict[str, float] = {}
    start = time.time()
    stages = {f'train_{m}': train_cmd(m, out / 'train', device, data_dir, scale) for m in (CODED, BASELINE)}
    if device == 'cpu':  # two processes of one thread each: more images per second than one after the other
        run_stages(stages, logs, timings, threads=1)
    else:
        for name, cmd in stages.items():
            run_stages({name: cmd}, logs, timings)
    ckpt = {m: out / 'train' / m / 'last.pth.tar' for m in (CODED, BASELINE)}
    with open(out / 'train' / CODED / 'summary.csv') as f:  # the last coded block: the last early-decoder column
        last_coded = [c[len('eval_dec_acc_'):] for c in next(csv.reader(f)) if c.startswith('eval_dec_acc_')][-1]
    run_stages({'analyze': [
        sys.executable, '-m', 'timm_coded.analyze', '--checkpoint', str(ckpt[CODED]), '--dataset', 'fashion_mnist',
        '--data-dir', data_dir, '--output', str(out / 'analysis'), '--baseline-model', BASELINE,
        '--baseline-checkpoint', str(ckpt[BASELINE]), '--train-samples', '2000', '--removal-blocks', last_coded,
        '--calibration-repeats', '4', '--device', device]}, logs, timings)
    results = json.loads((out / 'analysis' / 'results.json').read_text())
    (out / 'metrics.json').write_text(json.dumps(card_metrics(results), indent=1))
    shutil.rmtree(out / 'hub_export', ignore_errors=True)
    run_stages({'hub_export': export_command(ckpt[CODED], out / 'metrics.json', out / 'hub_export')}, logs, timings)
    timings['total'] = time.time() - start
    print(f'\nDone in {timings["total"] / 60:.1f} min. Report: {write_report(out, results, timings, device, scale)}')


def _pct(x: Optional[float]) -> str:
    return '-' if x is None else f'{100 * x:.1f} %'


def write_report(out: Path, res: Dict, timings: Dict[str, float], device: str, scale: float) -> Path:
    """README.md of the output folder: the binary-classifier gap and the removal result first, in plain words."""
    bc = res['binary_classifiers']['mean']
    coded, plain, full, plain_full = (bc[k]['val'] for k in ('coded', 'plain', 'full_logit', 'plain_full_logit'))
    rm = res['removal'][-1]
    drop_active = rm['accuracy_active'][0] - rm['accuracy_active'][1]
    drop_inactive = rm['accuracy_inactive'][0] - rm['accuracy_inactive'][1]
    dec = res['early_decoders']
    share = res['binary_classifiers']['cost']['param_share']
    lines = [
        '# timm-coded main job: Coded ResNeXt vs a plain ResNeXt on Fashion-MNIST', '',
        f'`{CODED}` and its plain baseline `{BASELINE}`, same recipe and data (scale {scale:g}, device `{device}`), '
        f'measured on the whole test split ({res["samples"]["test"]} images). Total {timings["total"] / 60:.1f} min '
        '(' + ', '.join(f'{k} {v / 60:.1f} min' for k, v in timings.items() if k != 'total') + ').', '',
        '## What the coding buys', '',
        f'- **Binary classifiers.** Keeping in every coded block only the subNNs of one class (and one row of the '
        f'classifier) cuts a binary classifier with {100 * share:.0f} % of the parameters out of the trained '
        f'network. Cut from the coded model they reach a mean F1 of **{coded["f1"]:.3f}** (precision '
        f'{_pct(coded["precision"])}, recall {_pct(coded["recall"])}); the same cut from the plain ResNeXt reaches '
        f'**{plain["f1"]:.3f}** (precision {_pct(plain["precision"])}, recall {_pct(plain["recall"])}): a gap of '
        f'**{coded["f1"] - plain["f1"]:+.3f}** F1. The full networks\' class logits reach {full["f1"]:.3f} (coded) '
        f'and {plain_full["f1"]:.3f} (plain): the cut keeps **{_pct(coded["f1"] / full["f1"])}** of the coded '
        f'network\'s F1 and {_pct(plain["f1"] / plain_full["f1"])} of the plain one\'s.',
        f'- **SubNN removal** in `{rm["block"]}`: removing one random subNN that is active for the sample\'s class '
        f'costs **{100 * drop_active:.2f}** accuracy points; removing one inactive subNN costs '
        f'**{100 * drop_inactive:.2f}** (negative: accuracy rises).',
        '- **Early decoders**: the class read off each coded block\'s subNN energies, no classifier: '
        + ', '.join(f'`{b}` {_pct(a)}' for b, a in zip(dec['blocks'], dec['accuracy'])) + '.',
        f'- **Accuracy**: coded {_pct(res["accuracy"])}, plain {_pct(res["baseline_accuracy"])}.', '',
        'Thresholds of the binary classifiers maximise F1 on training images (the paper\'s rule); every test image '
        'of the other nine classes is a negative. The full analysis, with every table and figure, is in '
        '[analysis/report.md](analysis/report.md); the Hub export (weights, config, card) in '
        '[hub_export/](hub_export/README.md); logs in `logs/`.', '']
    lines += [f'![{fig.stem}](analysis/{fig.name})\n' for fig in sorted((out / 'analysis').glob('*.png'))]
    path = out / 'README.md'
    path.with_suffix('.md.tmp').write_text('\n'.join(lines))
    os.replace(path.with_suffix('.md.tmp'), path)
    return path


if __name__ == '__main__':
    main()
