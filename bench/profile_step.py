"""Where a coded train step spends its extra time: torch.profiler of coded vs timm ResNeXt, op by op.

Prints, per batch size, the host (CPU) time, device time, kernel launches and host syncs of one training step of
each model, then the ops whose time differs most between them. A development tool: nothing is written.

    python bench/profile_step.py [--device cuda] [--batches 32,256] [--amp]
"""
import argparse
from collections import defaultdict
from typing import Dict, Tuple

import timm
import torch
from torch.profiler import ProfilerActivity, profile

from bench_models import train_step_fn

SYNC_EVENTS = ('cudaStreamSynchronize', 'cudaDeviceSynchronize', 'cudaEventSynchronize', 'aten::_local_scalar_dense')
LAUNCH_EVENTS = ('cudaLaunchKernel', 'cudaLaunchKernelExC', 'cuLaunchKernel', 'cuLaunchKernelEx')


def profile_steps(step, device: torch.device, steps: int) -> Tuple[Dict[str, Tuple[float, float, int]], float, float]:
    """{op: (cpu ms, device ms, calls) per step}, host ms per step, device ms per step."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
            if device.type == 'cuda':
                torch.cuda.synchronize()
    ops: Dict[str, Tuple[float, float, int]] = defaultdict(lambda: (0., 0., 0))
    for e in prof.key_averages():
        dev = getattr(e, 'self_device_time_total', 0.) or 0.
        ops[e.key] = (e.self_cpu_time_total / 1e3 / steps, dev / 1e3 / steps, e.count // steps)
    return ops, sum(v[0] for v in ops.values()), sum(v[1] for v in ops.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--batches', default='32,256')
    parser.add_argument('--amp', action='store_true', help='bf16 autocast')
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--top', type=int, default=25)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = device.type == 'cuda'
    for batch in (int(b) for b in args.batches.split(',')):
        torch.manual_seed(0)
        x = torch.randn(batch, 3, 160, 160, device=device)
        y = torch.randint(1000, (batch,), device=device)
        result = []
        for name, coded in (('coded_resnext50_32x4d', True), ('resnext50_32x4d', False)):
            model = timm.create_model(name).to(device).train()
            step = train_step_fn(model, x, y, coded, args.amp)
            for _ in range(3):
                step()
            result.append(profile_steps(step, device, args.steps))
            del model, step
        (c_ops, c_host, c_dev), (b_ops, b_host, b_dev) = result
        count = lambda ops, keys: sum(ops[k][2] for k in keys if k in ops)
        print(f'\n== batch {batch}{" bf16" if args.amp else ""} on {device}: per step, coded / base ==')
        print(f'host (CPU) time {c_host:.1f} / {b_host:.1f} ms; device time {c_dev:.1f} / {b_dev:.1f} ms; kernel '
              f'launches {count(c_ops, LAUNCH_EVENTS)} / {count(b_ops, LAUNCH_EVENTS)}; host syncs '
              f'{count(c_ops, SYNC_EVENTS)} / {count(b_ops, SYNC_EVENTS)}')
        keys = set(c_ops) | set(b_ops)
        for label, idx in (('device', 1), ('host', 0)):
            rows = sorted(keys, key=lambda k: -abs(c_ops[k][idx] - b_ops[k][idx]))[:args.top]
            print(f'-- ops by {label}-time difference (ms coded, ms base, calls coded, calls base) --')
            for k in rows:
                print(f'{c_ops[k][idx] - b_ops[k][idx]:+8.3f} {c_ops[k][idx]:8.3f} {b_ops[k][idx]:8.3f} '
                      f'{c_ops[k][2]:5d} {b_ops[k][2]:5d}  {k[:90]}')


if __name__ == '__main__':
    main()
