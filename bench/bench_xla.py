"""XLA compile and device-to-host transfer counts of the training script, per step, on XLA:CPU.

Runs `python -m train_hooks.train --config fashion_mnist --device xla --xla-metrics` in the XLA virtualenv
(built by scripts/xla_env.sh) on one device and with SPMD over two (CPU_NUM_DEVICES=2), reads the per-step
counts from torch_xla.debug.metrics that the script records, and writes them to BENCHMARKS.md.

    bash scripts/xla_env.sh && python bench/bench_xla.py [--epochs 2]
"""
import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, List

from timm_coded.analyze.report import markdown_table

from common import ROOT, command_line, machine_info, write_section

XLA_PYTHON = ROOT / '.venv-xla' / 'bin' / 'python'


def run(devices: int, epochs: int, out: Path) -> List[Dict]:
    """One training run; returns the per-step metric records."""
    if not XLA_PYTHON.exists():
        raise SystemExit(f'{XLA_PYTHON} not found: build the XLA virtualenv first with `bash scripts/xla_env.sh`.')
    args = ['--config', 'fashion_mnist', '--train-per-class', '10', '--val-per-class', '5', '-b', '32', '-vb', '32',
            '--epochs', str(epochs), '--warmup-epochs', '1', '-j', '0', '--log-interval', '100', '--seed', '0',
            '--device', 'xla', '--xla-metrics', '--output', str(out), '--experiment', f'xla{devices}']
    env = dict(os.environ, PJRT_DEVICE='CPU', CPU_NUM_DEVICES=str(devices), PYTHONPATH=str(ROOT))
    proc = subprocess.run([str(XLA_PYTHON), '-m', 'train_hooks.train', *args], env=env, cwd=str(out),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f'XLA run on {devices} device(s) failed:\n{(proc.stdout + proc.stderr)[-3000:]}')
    return json.loads((out / f'xla{devices}' / 'xla_metrics.json').read_text())['steps']


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--epochs', type=int, default=2)
    parser.add_argument('--no-write', action='store_true')
    args = parser.parse_args()
    info = machine_info()
    sections = []
    with tempfile.TemporaryDirectory() as tmp:
        for devices in (1, 2):
            steps = run(devices, args.epochs, Path(tmp))
            first_epoch_end = [s for s in steps if s['epoch'] == 0][-1]['compiles']
            later = {s['compiles'] for s in steps if s['epoch'] >= 1}
            verdict = ('no compilation after the first epoch' if later <= {first_epoch_end}
                       else f'compiles keep growing after the first epoch: {sorted(later)}')
            rows = [[s['phase'], s['epoch'], s['batch'], s['compiles'], s['transfers_from_device'],
                     'yes' if s['logged'] else ''] for s in steps]
            table = markdown_table(['phase', 'epoch', 'batch', 'compiles so far', 'device-to-host transfers so far',
                                    'logged step'], rows)
            label = 'one XLA:CPU device' if devices == 1 else 'SPMD over 2 XLA:CPU devices (batch sharded on a mesh)'
            sections.append(f'### {label}\n\n{verdict}; total compiles {steps[-1]["compiles"]}.\n\n{table}\n')
            print(label, verdict, flush=True)
    body = (f'## XLA compile counts of the training script\n\nMachine: {info} (host side; the XLA venv runs torch '
            f'2.9.0 + torch_xla 2.9.0, PJRT_DEVICE=CPU).\nCommand: `{command_line()}`\n\n'
            'Recipe `fashion_mnist` (coded_resnext11_10x4d), 100-image subset, batch 32, EMA off, '
            f'{args.epochs} epochs; counts from torch_xla.debug.metrics (`CompileTime`, `TransferFromDeviceTime`) '
            'after every train / eval step. Non-logging steps add no transfer; the jump between epochs is the '
            'end-of-epoch checkpoint, written from CPU copies of every tensor.\n\n' + '\n'.join(sections))
    print(body)
    if not args.no_write:
        write_section('bench_xla', body)


if __name__ == '__main__':
    main()
