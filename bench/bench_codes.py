"""Benchmark of coding-scheme generation (timm_coded.codes.generate_scheme).

Times a fresh generation (generate_scheme caches nothing; get_scheme's cache is not used) of the paper's
CIFAR-100 and ImageNet-1k schemes plus an odd-sized one, best of --repeat runs; then user shapes where the
lexicode search of Algorithm 1 alone (`generate._search`, the previous generator) stops below the upper bound
on H_min, before/after the tabu search; then every K in 2..100 for the model shapes (N, N_act) (one run
each: worst time, how often H_min reaches the upper bound). Writes the `bench_codes` section of BENCHMARKS.md.

    source scripts/env.sh && python bench/bench_codes.py [--repeat 3] [--output BENCHMARKS.md] [--no-sweep]
"""
import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from timm_coded.analyze.report import markdown_table
from timm_coded.codes import generate, generate_scheme

from common import BENCHMARKS, command_line, machine_info, write_section

# (K, N, N_act, dataset, paper's H_min, paper's S_min-S_max) -- App. A of arXiv:2202.05343.
CASES = [
    (100, 20, 8, 'CIFAR-100', '8', '40-40'),
    (100, 20, 4, 'CIFAR-100', '4', '20-20'),
    (1000, 32, 16, 'ImageNet-1k', '10', '499-501'),
    (1000, 32, 8, 'ImageNet-1k', '6', '249-251'),
    (37, 10, 3, '(37 classes)', '-', '-'),
    (1000, 20, 8, '(1000 classes, r = 8/20)', '-', '-'),
]
# User shapes (fine-tuning an N = 10 / N = 20 net on another class count, or other N).
USER_CASES = [(11, 10, 3), (12, 10, 3), (13, 10, 3), (20, 10, 3), (42, 10, 3), (10, 6, 3), (19, 10, 4), (30, 10, 4),
              (23, 10, 5), (30, 10, 5), (36, 10, 5), (37, 10, 5), (15, 20, 8), (20, 20, 8), (37, 20, 8),
              (30, 20, 4), (26, 20, 10), (60, 20, 10), (21, 12, 6), (17, 16, 4), (80, 16, 8), (64, 32, 16),
              (100, 32, 8)]
MODEL_SHAPES = [(10, 5), (10, 3), (20, 8), (20, 4), (32, 16), (32, 8)]


def time_case(k: int, n: int, a: int, repeat: int):
    best, scheme = float('inf'), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        scheme = generate_scheme(k, n, a)
        best = min(best, time.perf_counter() - t0)
    return best, scheme


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--repeat', type=int, default=3)
    p.add_argument('--output', type=Path, default=BENCHMARKS)
    p.add_argument('--no-sweep', action='store_true', help='skip the K = 2..100 sweep of the model shapes')
    args = p.parse_args(argv)
    warnings.simplefilter('ignore')  # the r*K-is-fractional warnings of the odd shapes
    lines = [
        '## Coding-scheme generation (`timm_coded.codes`)',
        '',
        f'- Machine: {machine_info()}; numpy {np.__version__} (the machine is shared: timings are noisy)',
        f'- Command: `{command_line()}`',
        f'- Fresh `generate_scheme(K, N, N_act)` (default arguments, no cache), best of {args.repeat} runs.',
        '',
    ]
    rows = []
    for k, n, a, dataset, paper_h, paper_s in CASES:
        sec, s = time_case(k, n, a, args.repeat)
        print(f'{(k, n, a)}: {sec:.3f} s, H_min {s.min_distance}, S {s.s_min}-{s.s_max}', flush=True)
        rows.append((dataset, (k, n, a), f'{sec:.4f}', s.min_distance, s.s_min, s.s_max, paper_h, paper_s))
    lines += [markdown_table(('dataset', '(K, N, N_act)', 'seconds', 'H_min', 'S_min', 'S_max', 'paper H_min',
                              'paper S_min-S_max'), rows), '',
              'User shapes: H_min of the lexicode search alone (Algorithm 1 with its balancing heuristics, the '
              'previous generator) and of `generate_scheme` now (tabu search where the former stops below the '
              'upper bound), upper bound (Plotkin / Johnson), column sums, seconds (best of the runs).', '']
    rows = []
    for k, n, a in USER_CASES:
        old_d = generate._search(k, n, a, 2, 0)[1]  # the lexicode search alone: the previous generator
        sec, s = time_case(k, n, a, args.repeat)
        print(f'{(k, n, a)}: H_min {old_d} -> {s.min_distance}, {sec:.3f} s', flush=True)
        rows.append(((k, n, a), old_d, s.min_distance, generate._distance_upper_bound(k, n, a),
                     f'{s.s_min}-{s.s_max}', generate._ideal_spread(k, n, a), f'{sec:.3f}'))
    lines.append(markdown_table(('(K, N, N_act)', 'H_min lexicode only', 'H_min now', 'upper bound', 'S_min-S_max',
                                 'ideal spread', 'seconds'), rows))
    if not args.no_sweep:
        rows = []
        for n, a in MODEL_SHAPES:  # one generation for every K in 2..100
            worst, worst_k, at_bound, improved = 0.0, 0, 0, 0
            for k in range(2, 101):
                sec, s = time_case(k, n, a, 1)
                if sec > worst:
                    worst, worst_k = sec, k
                at_bound += s.min_distance == generate._distance_upper_bound(k, n, a)
                improved += s.min_distance > generate._search(k, n, a, 2, 0)[1]
            print(f'{(n, a)}: worst {worst:.3f} s (K = {worst_k}), {at_bound} at the bound, {improved} improved')
            rows.append(((n, a), f'{worst:.3f} (K = {worst_k})', f'{at_bound} / 99', improved))
        lines += ['', 'Model shapes, every K in 2..100 (one run each):', '',
                  markdown_table(('(N, N_act)', 'worst seconds (at K)', 'K with H_min = upper bound',
                                  'K improved over lexicode only'), rows)]
    write_section('bench_codes', '\n'.join(lines), args.output)
    print(f'wrote {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
