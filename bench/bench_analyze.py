"""Extracted binary classifier and early-exit inference vs the full Coded ResNeXt: latency next to FLOP share.

For each net, one run times (interleaved, median of --repeats calls, eval + inference_mode) the full model,
the binary classifier of class 0 (every class has the same cost) and an early exit at every coded block
(`EarlyExit`: stem + blocks up to block l + that block's energies, nothing after). FLOPs are counted by
torch's FlopCounterMode, parameters exactly (weights, biases, BN affine). Weights are random: latency and
FLOPs do not depend on them.

    python bench/bench_analyze.py [--repeats 15] [--threads 1] [--device cpu]
"""
import argparse
import os
from typing import Dict, List

import timm
import torch

import timm_coded  # noqa: F401
from timm_coded.analyze import EarlyExit, count_flops, count_parameters, extract_binary_classifier

from common import command_line, machine_info, time_interleaved, write_section

CASES = [('coded_resnext29_10x11d', 32, 64), ('coded_resnext50_32x4d', 160, 8)]


def bench_case(name: str, size: int, batch: int, repeats: int, device: str) -> List[Dict]:
    model = timm.create_model(name).to(device).eval()
    input_size = (3, size, size)
    x = torch.randn(batch, *input_size, device=device)
    variants = {'full model': model, 'binary classifier (class 0)': extract_binary_classifier(model, 0).to(device)}
    for i, block in enumerate(model.coded_block_names()):
        variants[f'early exit @ {block}'] = EarlyExit(model, i)
    full_flops, full_params = count_flops(model, input_size), count_parameters(model)

    def call(m):
        def fn():
            with torch.inference_mode():
                m(x)
        return fn

    times = time_interleaved({k: call(m) for k, m in variants.items()}, repeats, device=device)
    rows = []
    for key, m in variants.items():
        params = full_params if key == 'full model' else count_parameters(m) if key.startswith('binary') else None
        rows.append({'net': name, 'input': f'{batch}x{size}px', 'variant': key, 'ms': 1e3 * times[key],
                     'latency_share': times[key] / times['full model'],
                     'flop_share': count_flops(m, input_size) / full_flops,
                     'param_share': None if params is None else params / full_params})
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
    rows = [r for name, size, batch in CASES for r in bench_case(name, size, batch, args.repeats, args.device)]
    load_end = os.getloadavg()[0]
    lines = ['## Binary classifiers and early exit (`timm_coded.analyze`)', '',
             f'- Machine: {info}; load average {load_end:.2f} at the end',
             f'- Device: {args.device}, {torch.get_num_threads()} torch thread(s)',
             f'- Command: `source scripts/env.sh && {command_line()}`',
             f'- Median of {args.repeats} interleaved eval forward passes per variant (random weights); latency and '
             'FLOP share are relative to the full model in the same run. FLOPs: torch FlopCounterMode; parameters: '
             'exact count of weights, biases and BN affine parameters (the BC of every class has the same size).',
             '- CPU timings on a shared 2-core machine are noisy: read the latency share next to the FLOP share.', '',
             '| net | batch x input | variant | ms / batch | latency share | FLOP share | parameter share |',
             '|---|---|---|---:|---:|---:|---:|']
    for r in rows:
        ps = '' if r['param_share'] is None else f'{100 * r["param_share"]:.1f} %'
        lines.append(f'| {r["net"]} | {r["input"]} | {r["variant"]} | {r["ms"]:.1f} | '
                     f'{100 * r["latency_share"]:.1f} % | {100 * r["flop_share"]:.1f} % | {ps} |')
    text = '\n'.join(lines)
    print(text)
    if not args.no_write:
        write_section('bench_analyze', text)


if __name__ == '__main__':
    main()
