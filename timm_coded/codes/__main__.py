""" ``python -m timm_coded.codes``: generate or show a coding scheme.

    python -m timm_coded.codes --classes 37 --subnns 10 --active 3 [--min-distance D] [--json]
    python -m timm_coded.codes --list | --builtin NAME
"""
import argparse
import json
import sys
import time
from typing import Optional, Sequence

from .builtin import _builtins, builtin_names
from .generate import generate_scheme


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog='python -m timm_coded.codes', description=(
        'Generate or show a Coded ResNeXt coding scheme (K classes x N subNNs, N_act ones per codeword).'))
    p.add_argument('--classes', '-K', type=int, help='number of classes K')
    p.add_argument('--subnns', '-N', type=int, help='number of subNNs N (codeword length)')
    p.add_argument('--active', '-A', type=int, help='active subNNs per class N_act')
    p.add_argument('--min-distance', type=int, default=None, help='required minimum Hamming distance')
    p.add_argument('--seed', type=int, default=0, help='seed of the pseudo-random pool and of the tabu search')
    p.add_argument('--builtin', metavar='NAME', help='print a built-in scheme instead')
    p.add_argument('--list', action='store_true', help='list the built-in schemes')
    p.add_argument('--json', action='store_true', help='print one JSON object instead of text')
    args = p.parse_args(argv)
    if not (args.list or args.builtin) and None in (args.classes, args.subnns, args.active):
        p.error('give --classes, --subnns and --active (or --builtin NAME, or --list)')
    if args.list:
        rows = [dict(name=s.name, K=s.num_classes, N=s.num_subnns, N_act=s.num_active,
                     min_distance=s.min_distance, s_min=s.s_min, s_max=s.s_max) for s in _builtins().values()]
        print(json.dumps(rows) if args.json else '\n'.join(
            f"{r['name']:<18} K={r['K']:<5} N={r['N']:<3} N_act={r['N_act']:<3} "
            f"min_distance={r['min_distance']:<3} S_min={r['s_min']} S_max={r['s_max']}" for r in rows))
        return 0
    t0 = time.perf_counter()
    try:
        if args.builtin:
            if args.builtin not in _builtins():
                raise ValueError(f'No built-in scheme {args.builtin!r}; available: {", ".join(builtin_names())}.')
            scheme = _builtins()[args.builtin]
        else:
            scheme = generate_scheme(args.classes, args.subnns, args.active, args.min_distance, args.seed)
        seconds = time.perf_counter() - t0
    except ValueError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(dict(scheme.to_json(), min_distance=scheme.min_distance,
                              column_sums=[int(s) for s in scheme.column_sums], s_min=scheme.s_min,
                              s_max=scheme.s_max, seconds=round(seconds, 4), fingerprint=scheme.fingerprint())))
        return 0
    label = f' {scheme.name}' if scheme.name else ''
    print(f'# coding scheme{label}: K={scheme.num_classes} N={scheme.num_subnns} N_act={scheme.num_active} '
          f'(r={scheme.ratio_str})')
    for word, cls in zip(scheme.to_strings(), scheme.class_names or ('',) * scheme.num_classes):
        print(f'{word}  {cls}'.rstrip())
    print(f'# min distance {scheme.min_distance}, S_min {scheme.s_min}, S_max {scheme.s_max}, {seconds:.3f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
