"""Coded ResNeXt vs timm ResNeXt: train-step time and memory, and the coded block vs the explicit formulation.

Ratios measured side by side in one run, calls interleaved: the train step of coded_resnext50_32x4d vs timm's
resnext50_32x4d at 160 px and of the CIFAR nets vs their baselines, and the stage-4 coded block vs the paper authors'
explicit formulation (`ExplicitCodedBlock`); activation memory (exact) and the peak memory of training. Writes the
`bench_models` (CPU, glibc malloc defaults), `bench_models_cpu_cached_malloc` (CPU run with MALLOC_* tunables that
keep freed memory, e.g. `MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=68719476736`) or
`bench_models_cuda` section of BENCHMARKS.md (`..._compile` with --compile). `--profile` prints instead where the
coded step spends its extra time: torch.profiler's per-op host and device times of the ResNeXt-50 pair.

    python bench/bench_models.py [--batches 8,32] [--repeats 7] [--device cpu|cuda] [--profile]
"""
import argparse
import multiprocessing
import os
import re
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import List, Optional

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

import timm_coded
from timm_coded import CodedBottleneck, subnn_coding_reference

from common import activation_bytes, command_line, machine_info, median, time_interleaved, time_interleaved_samples, \
    write_section


SYNC_EVENTS = ('cudaStreamSynchronize', 'cudaDeviceSynchronize', 'cudaEventSynchronize', 'aten::_local_scalar_dense')
LAUNCH_EVENTS = ('cudaLaunchKernel', 'cudaLaunchKernelExC', 'cuLaunchKernel', 'cuLaunchKernelEx')


class ExplicitCodedBlock(nn.Module):
    """The paper authors' formulation of a coded block: N separate subNN outputs t_n (N*C channels)."""

    def __init__(self, block: CodedBottleneck):
        super().__init__()
        self.block = block
        c, nd = block.conv3.weight.shape[:2]
        self.n = block.num_subnns
        # grouped 1x1 conv: group n maps h_n (d channels) to t_n (C channels) with W_n
        w = block.conv3.weight.detach().reshape(c, self.n, -1).transpose(0, 1).reshape(self.n * c, -1, 1, 1)
        self.expand = nn.Conv2d(nd, self.n * c, 1, groups=self.n, bias=False)
        self.expand.weight = nn.Parameter(w.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.block
        h = b.act2(b.bn2(b.conv2(b.act1(b.bn1(b.conv1(x))))))
        t = self.expand(h)
        t = t.view(t.shape[0], self.n, -1, *t.shape[2:])
        keep = b.subnn_drop.sample(t) if self.training and b.subnn_drop.rate > 0 else None
        out, b.subnn_energies = subnn_coding_reference(t, keep, b.energy_eps)  # Eq. 2-3 + dropSubNNs, literally
        shortcut = x if b.downsample is None else b.downsample(x)
        return F.relu(b.bn3(out) + shortcut)


def train_step_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor, coded: bool, amp: bool = False):
    """One SGD training step; with `amp`, forward and loss under bf16 autocast (the energy path stays fp32)."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, nesterov=True)

    def step():
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(model(x), y)
            if coded:
                loss = loss + 2. * timm_coded.coding_loss(model, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def peak_probe(name: str, size: int, batch: int, num_classes: int, device: str, amp: bool) -> int:
    """Peak memory growth (bytes) over 3 training steps, on top of the process with the model built: activations,
    gradients, optimizer state and workspace. CUDA: `max_memory_allocated`; CPU: peak RSS (VmHWM, which unlike
    `ru_maxrss` does not inherit the parent's peak across fork + exec)."""
    cuda = device.startswith('cuda')
    torch.backends.cudnn.benchmark = cuda
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=num_classes).to(device).train()
    x, y = torch.randn(batch, 3, size, size, device=device), torch.randint(num_classes, (batch,), device=device)
    step = train_step_fn(model, x, y, bool(getattr(model, 'coded_blocks', list)()), amp)
    base = torch.cuda.memory_allocated() if cuda else proc_status_bytes('VmRSS')
    for _ in range(3):
        step()
    return (torch.cuda.max_memory_allocated() if cuda else proc_status_bytes('VmHWM')) - base


def proc_status_bytes(key: str) -> int:
    """A memory figure of /proc/self/status (VmRSS: resident now; VmHWM: its peak), in bytes."""
    return int(re.search(rf'^{key}:\s*(\d+) kB', Path('/proc/self/status').read_text(), re.M)[1]) * 1024


def peak_growth(*probe_args) -> float:
    """`peak_probe` in a fresh (spawned) process, in MiB."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context('spawn')) as pool:
        return pool.submit(peak_probe, *probe_args).result() / 2 ** 20


def pair_row(coded_name: str, base_name: str, size: int, batch: int, num_classes: int, amp: bool, repeats: int,
             device: torch.device, compiled: bool) -> str:
    """The pair's Markdown row: train-step times side by side; activation and peak memory in eager mode only."""
    torch.manual_seed(0)
    names = {'coded': coded_name, 'base': base_name}
    models = {k: timm.create_model(n, num_classes=num_classes).to(device).train() for k, n in names.items()}
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(num_classes, (batch,), device=device)
    steps = {k: train_step_fn(torch.compile(m) if compiled else m, x, y, k == 'coded', amp) for k, m in models.items()}
    warmup = 5 if device.type == 'cuda' else 2  # cudnn.benchmark picks its algorithms in the first steps
    samples = time_interleaved_samples(steps, repeats, warmup, device)
    ratios = sorted(a / b for a, b in zip(samples['coded'], samples['base']))  # the two steps of each round
    tc, tb = (median(v) for v in samples.values())
    act, peak = 'n/a (compiled) | n/a', 'n/a (compiled)'
    if not compiled:  # saved-tensor hooks and fresh-process peaks would measure (and re-run) the compiler
        coded, base = models.values()
        fwd = {'coded': lambda: coded(x).sum() + timm_coded.coding_loss(coded, y), 'base': lambda: base(x).sum()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            ac, ab = (activation_bytes(fwd[k], m) / 2 ** 20 for k, m in models.items())
        pc, pb = (peak_growth(n, size, batch, num_classes, str(device), amp) for n in names.values())
        act, peak = f'{ac:.1f} / {ab:.1f} MiB | **{ac / ab:.3f}**', f'{pc:.0f} / {pb:.0f} MiB = **{pc / pb:.3f}**'
    return (f'| `{coded_name}` vs `{base_name}` | {size} px, batch {batch}{", bf16 autocast" if amp else ""} | '
            f'{tc * 1e3:.1f} / {tb * 1e3:.1f} ms | **{median(ratios):.3f}** ({ratios[len(ratios) // 4]:.3f}-'
            f'{ratios[-1 - len(ratios) // 4]:.3f}) | {act} | {peak} |')


def block_row(batch: int, repeats: int, device: torch.device) -> str:
    """The Markdown row of coded_resnext50_32x4d's layer4[1] (2048 -> 2048, N = 32, d = 32) on its 160 px input
    (5x5) against `ExplicitCodedBlock`: forward + backward time and activation memory."""
    torch.manual_seed(0)
    block = timm.create_model('coded_resnext50_32x4d').layer4[1].to(device).train()
    block.subnn_drop.rate = 0.  # identical maths in both, no random masks
    explicit = ExplicitCodedBlock(block).to(device).train()
    x = torch.randn(batch, 2048, 5, 5, device=device, requires_grad=True)
    with torch.no_grad():
        torch.testing.assert_close(block.eval()(x), explicit.eval()(x), rtol=1e-3, atol=1e-4)
    block.train(), explicit.train()
    modules = {'coded': block, 'explicit': explicit}

    def fb(module):
        def run():
            out = module(x)
            (out.square().mean() + block.subnn_energies.square().mean()).backward()
        return run
    tc, te = time_interleaved({k: fb(m) for k, m in modules.items()}, repeats * 4, device=device).values()
    ac, ae = (activation_bytes(lambda: m(x), m) / 2 ** 20 for m in modules.values())
    return (f'| {batch} | {tc * 1e3:.2f} / {te * 1e3:.2f} ms | **{te / tc:.2f}x faster** | {ac:.2f} / {ae:.2f} MiB | '
            f'**{ac / ae:.3f}x** |')


def profile_pair(batch: int, amp: bool, device: torch.device, steps: int = 3, top: int = 25) -> None:
    """Print the ResNeXt-50 pair's train step (160 px) op by op, ops sorted by the time difference."""
    x, y = torch.randn(batch, 3, 160, 160, device=device), torch.randint(1000, (batch,), device=device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
    ops = []  # per model, {op: (host ms, device ms, calls) per step}
    for name in ('coded_resnext50_32x4d', 'resnext50_32x4d'):
        torch.manual_seed(0)
        step = train_step_fn(timm.create_model(name).to(device).train(), x, y, name.startswith('coded'), amp)
        for _ in range(3):
            step()
        with profile(activities=activities) as prof:
            for _ in range(steps):
                step()
                if device.type == 'cuda':
                    torch.cuda.synchronize()
        ops.append(defaultdict(lambda: (0., 0., 0), {e.key: (e.self_cpu_time_total / 1e3 / steps, (getattr(
            e, 'self_device_time_total', 0.) or 0.) / 1e3 / steps, e.count // steps) for e in prof.key_averages()}))
    coded, base = ops
    total = lambda o, i, keys=None: sum(v[i] for k, v in o.items() if keys is None or k in keys)  # noqa: E731
    print(f'\n== batch {batch}{" bf16" if amp else ""} on {device}, per step, coded / base: host '
          f'{total(coded, 0):.1f} / {total(base, 0):.1f} ms, device {total(coded, 1):.1f} / {total(base, 1):.1f} ms, '
          f'kernel launches {total(coded, 2, LAUNCH_EVENTS)} / {total(base, 2, LAUNCH_EVENTS)}, host syncs '
          f'{total(coded, 2, SYNC_EVENTS)} / {total(base, 2, SYNC_EVENTS)} ==')
    for label, i in (('device', 1), ('host', 0)):
        print(f'-- ops by {label}-time difference (ms coded, ms base, calls coded, calls base) --')
        for k in sorted(set(coded) | set(base), key=lambda k: -abs(coded[k][i] - base[k][i]))[:top]:
            print(f'{coded[k][i] - base[k][i]:+8.3f} {coded[k][i]:8.3f} {base[k][i]:8.3f} {coded[k][2]:5d} '
                  f'{base[k][2]:5d}  {k[:90]}')


def batch_list(arg: Optional[str], default: str) -> List[int]:
    """Comma-separated batch sizes; an explicit empty string means none."""
    return [int(b) for b in (default if arg is None else arg).split(',') if b]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--batches', default=None,
                        help='comma-separated batches of the ResNeXt-50 pair (default 8,32 on CPU, 32,128,256 on CUDA)')
    parser.add_argument('--cifar-batch', type=int, default=None, help='default 32 on CPU, 128 on CUDA; 0: skip')
    parser.add_argument('--amp-batches', default=None,
                        help='batches of the ResNeXt-50 pair under bf16 autocast (default none on CPU, 256 on CUDA)')
    parser.add_argument('--block-batches', default=None,
                        help='batches of the coded-block figure, each >= 8 (default 8,32 on CPU, 8,256 on CUDA)')
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--compile', action='store_true',
                        help='both models under torch.compile (default mode), train-step time only; its own section')
    parser.add_argument('--no-write', action='store_true', help='print only, leave BENCHMARKS.md alone')
    parser.add_argument('--profile', action='store_true', help='print the op-by-op profile of the ResNeXt-50 '
                        'pair at --batches and --amp-batches instead; nothing is written')
    args = parser.parse_args()
    device = torch.device(args.device)
    cuda = device.type == 'cuda'
    torch.backends.cudnn.benchmark = cuda  # as timm's train.py
    if args.profile:
        for batch, amp in [(b, False) for b in batch_list(args.batches, '32,256' if cuda else '8')] + [
                (b, True) for b in batch_list(args.amp_batches, '256' if cuda else '')]:
            profile_pair(batch, amp, device)
        return
    cifar_batch = args.cifar_batch if args.cifar_batch is not None else (128 if cuda else 32)
    info = machine_info()
    malloc = {k: v for k, v in sorted(os.environ.items()) if k.startswith('MALLOC_') or k == 'LD_PRELOAD'}

    r50 = ('coded_resnext50_32x4d', 'resnext50_32x4d', 160)
    pairs = [(*r50, b, 1000, False) for b in batch_list(args.batches, '32,128,256' if cuda else '8,32')]
    pairs += [(*r50, b, 1000, True) for b in batch_list(args.amp_batches, '256' if cuda and not args.compile else '')]
    if cifar_batch:
        pairs += [('coded_resnext29_10x11d', 'resnext29_10x11d', 32, cifar_batch, 10, False),
                  ('coded_resnext29_20x6d', 'resnext29_20x6d', 32, cifar_batch, 100, False)]
    rows = []
    for pair in pairs:
        rows.append(pair_row(*pair, args.repeats, device, args.compile))
        print(rows[-1], flush=True)
    block_rows = []
    for batch in batch_list(args.block_batches, '' if args.compile else '8,256' if cuda else '8,32'):
        block_rows.append(block_row(batch, args.repeats, device))
        print('block', block_rows[-1], flush=True)

    if cuda:
        where = (f'Device: `{device}` ({torch.cuda.get_device_name(device)}), cudnn.benchmark on, TF32: convolutions '
                 f'{torch.backends.cudnn.allow_tf32}, matmuls {torch.backends.cuda.matmul.allow_tf32} (torch defaults)')
    else:
        where = f'Device: `cpu`, {torch.get_num_threads()} threads, ' + (
            f'glibc malloc keeping freed memory in the process ({", ".join(f"{k}={v}" for k, v in malloc.items())}), '
            'as a caching allocator does: large buffers are not page-faulted anew every step' if malloc
            else 'glibc malloc defaults')
    peak = '`torch.cuda.max_memory_allocated`' if cuda else 'the peak RSS'
    title, compile_note = f', coded block vs explicit subNNs ({device.type.upper()})', ''
    if args.compile:
        title = f' ({device.type.upper()}, torch.compile)'
        where += '; both models under `torch.compile` (default mode), compiled in the warm-up steps'
        compile_note = (' Under torch.compile only the step time is measured: saved-tensor hooks and fresh-process '
                        'peaks would measure the compiler as well.')
    body = f"""## Coded ResNeXt vs timm ResNeXt (train step){title}

Machine: {info}. {where}.
Command: `{''.join(f'{k}={v} ' for k, v in malloc.items())}{command_line()}`

Train step = forward + backward + SGD (Nesterov) step; the coded step also computes 2 x coding loss. The two
models' steps alternate ({args.repeats} rounds after warm-up); time ratio = median over rounds of the ratio of
the two steps of a round (in brackets: the interquartile range of those ratios); step times are medians.
Activation memory = bytes of the distinct tensors autograd saves for backward in one forward (+ coding loss),
the part of training memory that depends on the block design (parameters, gradients and optimizer state are
identical: same parameter count). Peak memory: growth of {peak} over 3 training steps in a fresh process per \
model, above the process with the model built (activations, gradients, optimizer state, workspace).{compile_note}

| pair | input | step time coded / base | time ratio (target <= 1.03) | activation memory coded / base | activation ratio | peak memory coded / base (target <= 1.05) |
|---|---|---|---|---|---|---|
""" + '\n'.join(rows) + ('' if not block_rows else f"""

ImageNet stage-4 coded block (`layer4[1]`, 2048 channels, N = 32, d = 32) at 160 px (5x5), forward +
backward, ours (dense conv3 + quadratic-form energies) against the explicit per-subNN formulation of the paper
authors (grouped 1x1 expand to N*C channels), checked equal before timing; median of {args.repeats * 4}
interleaved runs:

| batch | fwd+bwd time ours / explicit | speed-up (target >= 1.8x) | activation memory ours / explicit | ratio (target <= 0.5x) |
|---|---|---|---|---|
""" + '\n'.join(block_rows)) + """
"""
    print(body)
    if not args.no_write:
        key = 'bench_models_cuda' if cuda else 'bench_models_cpu_cached_malloc' if malloc else 'bench_models'
        write_section(key + ('_compile' if args.compile else ''), body)


if __name__ == '__main__':
    main()
