"""Benchmark of coding-scheme generation (timm_coded.codes.generate_scheme).

Times a fresh generation (generate_scheme caches nothing; get_scheme's cache is not used) of the paper's
CIFAR-100 and ImageNet-1k schemes plus an odd-sized one, best of --repeat runs, and writes the results into
the `bench_codes` section of BENCHMARKS.md (only that section is replaced; the file is created if missing).

    source scripts/env.sh && python bench/bench_codes.py [--repeat 3] [--output BENCHMARKS.md]
"""
import argparse
import datetime
import os
import platform
import re
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from timm_coded.codes import generate_scheme

ROOT = Path(__file__).resolve().parent.parent
START, END = '<!-- bench_codes:start -->', '<!-- bench_codes:end -->'
# (K, N, N_act, dataset, paper's H_min, paper's S_min-S_max) -- App. A of arXiv:2202.05343.
CASES = [
    (100, 20, 8, 'CIFAR-100', '8', '40-40'),
    (100, 20, 4, 'CIFAR-100', '4', '20-20'),
    (1000, 32, 16, 'ImageNet-1k', '10', '499-501'),
    (1000, 32, 8, 'ImageNet-1k', '6', '249-251'),
    (37, 10, 3, '(37 classes)', '-', '-'),
    (1000, 20, 8, '(1000 classes, r = 8/20)', '-', '-'),
]


def cpu_model() -> str:
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def time_case(k: int, n: int, a: int, repeat: int):
    best, scheme = float('inf'), None
    for _ in range(repeat):
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            t0 = time.perf_counter()
            scheme = generate_scheme(k, n, a)
            best = min(best, time.perf_counter() - t0)
    return best, scheme


def render(rows, repeat: int) -> str:
    cores = os.cpu_count()
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    lines = [
        START,
        '## Coding-scheme generation (`timm_coded.codes`)',
        '',
        f'- Machine: {cpu_model()}, {cores} cores; Python {platform.python_version()}, numpy {np.__version__}',
        f'- Date: {datetime.date.today().isoformat()}',
        f'- Command: `source scripts/env.sh && python bench/bench_codes.py --repeat {repeat}`',
        f'- Fresh `generate_scheme(K, N, N_act)` (default arguments, no cache), best of {repeat} runs.',
        '',
        '| dataset | (K, N, N_act) | seconds | H_min | S_min | S_max | paper H_min | paper S_min-S_max |',
        '|---|---|---:|---:|---:|---:|---:|---:|',
    ]
    for (k, n, a, dataset, paper_h, paper_s), (sec, s) in rows:
        lines.append(f'| {dataset} | ({k}, {n}, {a}) | {sec:.4f} | {s.min_distance} | {s.s_min} | {s.s_max} | '
                     f'{paper_h} | {paper_s} |')
    lines.append(END)
    return '\n'.join(lines)


def write_section(path: Path, section: str) -> None:
    text = path.read_text(encoding='utf-8') if path.exists() else '# Benchmarks\n'
    pattern = re.compile(re.escape(START) + '.*?' + re.escape(END), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip('\n') + '\n\n' + section + '\n'
    path.write_text(text, encoding='utf-8')


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--repeat', type=int, default=3)
    p.add_argument('--output', type=Path, default=ROOT / 'BENCHMARKS.md')
    args = p.parse_args(argv)
    rows = []
    for case in CASES:
        sec, scheme = time_case(*case[:3], args.repeat)
        print(f'{case[:3]}: {sec:.3f} s, H_min {scheme.min_distance}, S {scheme.s_min}-{scheme.s_max}', flush=True)
        rows.append((case, (sec, scheme)))
    write_section(args.output, render(rows, args.repeat))
    print(f'wrote {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
