"""Extracted binary classifier and early-exit inference vs the full Coded ResNeXt: latency next to FLOP share.

For each net, one run times (interleaved, eval, inference mode) the full model, the binary classifier of class 0
(every class has the same cost) and an early exit at every coded block (`EarlyExit`: stem + blocks up to block l +
that block's energies, nothing after), next to their FLOP and parameter shares. Weights are random: latency and
FLOPs do not depend on them.

    python bench/bench_analyze.py [--repeats 15] [--threads 1] [--device cpu]
"""
import argparse
import os
from typing import List

import timm
import torch

import timm_coded
from timm_coded.analyze import EarlyExit, count_flops, count_parameters, extract_binary_classifier

from common import command_line, machine_info, time_interleaved, write_section

CASES = [('coded_resnext29_10x11d', 32, 64), ('coded_resnext50_32x4d', 160, 8)]


def bench_case(name: str, size: int, batch: int, repeats: int, device: str) -> List[str]:
    """The Markdown rows of one net: full model, binary classifier, early exits."""
    model = timm.create_model(name).to(device).eval()
    input_size = (3, size, size)
    x = torch.randn(batch, *input_size, device=device)
    variants = {'full model': model, 'binary classifier (class 0)': extract_binary_classifier(model, 0).to(device)}
    for i, (block, _) in enumerate(timm_coded.named_coded_blocks(model)):
        variants[f'early exit @ {block}'] = EarlyExit(model, i)
    full_flops, full_params = count_flops(model, input_size), count_parameters(model)
    times = time_interleaved({k: torch.inference_mode()(lambda m=m: m(x)) for k, m in variants.items()}, repeats,
                             device=device)
    rows = []
    for key, m in variants.items():
        params = full_params if key == 'full model' else count_parameters(m) if key.startswith('binary') else None
        rows.append(f'| {name} | {batch}x{size}px | {key} | {1e3 * times[key]:.1f} | '
                    f'{100 * times[key] / times["full model"]:.1f} % | '
                    f'{100 * count_flops(m, input_size) / full_flops:.1f} % | '
                    f'{"" if params is None else f"{100 * params / full_params:.1f} %"} |')
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--repeats', type=int, default=15)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None, help='torch intra-op threads (default: torch\'s)')
    parser.add_argument('--no-write', action='store_true', help='print only, leave BENCHMARKS.md alone')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine_info()
    rows = [r for case in CASES for r in bench_case(*case, args.repeats, args.device)]
    lines = ['## Binary classifiers and early exit (`timm_coded.analyze`)', '',
             f'- Machine: {info}; load average {os.getloadavg()[0]:.2f} at the end',
             f'- Device: {args.device}, {torch.get_num_threads()} torch thread(s)',
             f'- Command: `source scripts/env.sh && {command_line()}`',
             f'- Median of {args.repeats} interleaved eval forward passes per variant (random weights); latency and '
             'FLOP share are relative to the full model in the same run. FLOPs: torch FlopCounterMode; parameters: '
             'exact count of weights, biases and BN affine parameters (the BC of every class has the same size).',
             '- CPU timings on a shared 2-core machine are noisy: read the latency share next to the FLOP share.', '',
             '| net | batch x input | variant | ms / batch | latency share | FLOP share | parameter share |',
             '|---|---|---|---:|---:|---:|---:|', *rows]
    text = '\n'.join(lines)
    print(text)
    if not args.no_write:
        write_section('bench_analyze', text)


if __name__ == '__main__':
    main()
