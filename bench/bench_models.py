"""Coded ResNeXt vs timm ResNeXt: train-step time and memory, and the coded block vs the explicit formulation.

Figures (each a ratio measured side by side in one run, calls interleaved):
1. train step (forward + backward + SGD step; the coded step includes mu * coding loss) of
   coded_resnext50_32x4d vs timm's resnext50_32x4d at 160 px, and of the CIFAR nets vs their baselines;
2. the ImageNet stage-4 coded block at 160 px (5x5, batch >= 8), forward + backward, against the explicit
   per-subNN formulation (grouped 1x1 expand to N*C channels, as the paper authors implement it).
Memory: bytes of the tensors autograd saves for backward (activation memory, exact), and the peak memory of
training (CUDA allocator peak on a GPU, peak RSS on the CPU). Writes the `bench_models` (CPU, glibc malloc
defaults), `bench_models_cpu_cached_malloc` (CPU run with MALLOC_* tunables that keep freed memory, e.g.
`MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=68719476736`) or `bench_models_cuda` section of
BENCHMARKS.md.

    python bench/bench_models.py [--batches 8,32] [--repeats 7] [--device cpu|cuda]
"""
import argparse
import os
from typing import Dict, List, Optional, Tuple

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

import timm_coded
from timm_coded import CodedBottleneck, subnn_coding_reference

from common import activation_bytes, command_line, machine_info, median, time_interleaved, time_interleaved_samples, \
    write_section


class ExplicitCodedBlock(nn.Module):
    """The paper authors' formulation of a coded block: N separate subNN outputs t_n (N*C channels)."""

    def __init__(self, block: CodedBottleneck):
        super().__init__()
        self.block = block
        c, nd = block.conv3.weight.shape[:2]
        self.n = block.num_subnns
        d = nd // self.n
        # grouped 1x1 conv: group n maps h_n (d channels) to t_n (C channels) with W_n
        w = block.conv3.weight.detach().reshape(c, self.n, d).permute(1, 0, 2).reshape(self.n * c, d, 1, 1)
        self.expand = nn.Conv2d(nd, self.n * c, 1, groups=self.n, bias=False)
        self.expand.weight = nn.Parameter(w.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.block
        shortcut = x
        h = b.act2(b.bn2(b.conv2(b.act1(b.bn1(b.conv1(x))))))
        t = self.expand(h)
        t = t.view(t.shape[0], self.n, -1, *t.shape[2:])
        keep = b.subnn_drop.sample(t) if self.training and b.subnn_drop.rate > 0 else None
        out, b.subnn_energies = subnn_coding_reference(t, keep, b.energy_eps)  # Eq. 2-3 + dropSubNNs, literally
        out = b.bn3(out)
        if b.downsample is not None:
            shortcut = b.downsample(shortcut)
        return F.relu(out + shortcut)


def train_step_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor, coded: bool, amp: bool = False):
    """One SGD training step; with `amp`, forward and loss under bf16 autocast (the energy path stays fp32)."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, nesterov=True)

    def step():
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            out = model(x)
            loss = F.cross_entropy(out, y)
            if coded:
                loss = loss + 2. * timm_coded.coding_loss(model, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


_PEAK_PROBE = r"""
import resource, sys, timm, torch, torch.nn.functional as F, timm_coded
name, size, batch, k, device = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
amp, cuda = bool(int(sys.argv[6])), device.startswith('cuda')
torch.backends.cudnn.benchmark = cuda
torch.manual_seed(0)
model = timm.create_model(name, num_classes=k).to(device).train()
opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, nesterov=True)
x, y = torch.randn(batch, 3, size, size, device=device), torch.randint(k, (batch,), device=device)
coded = bool(getattr(model, 'coded_blocks', list)())
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * resource.getpagesize()
base = torch.cuda.memory_allocated() if cuda else rss()
for _ in range(3):
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        loss = F.cross_entropy(model(x), y)
        if coded:
            loss = loss + 2. * timm_coded.coding_loss(model, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
peak = torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(peak - base)
"""


def peak_growth(name: str, size: int, batch: int, num_classes: int, device: torch.device,
                amp: bool = False) -> float:
    """Peak memory growth (MiB) over 3 training steps, in a fresh process, on top of the process with the model
    built: activations, gradients, optimizer state and workspace. CUDA: `max_memory_allocated`; CPU: peak RSS."""
    import subprocess
    import sys
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()))
    out = subprocess.run([sys.executable, '-c', _PEAK_PROBE, name, str(size), str(batch), str(num_classes),
                          str(device), str(int(amp))], capture_output=True, text=True, check=True, env=env)
    return int(out.stdout.strip().splitlines()[-1]) / 2 ** 20


def bench_pair(coded_name: str, base_name: str, size: int, batch: int, repeats: int, device: torch.device,
               num_classes: int, amp: bool = False, compiled: bool = False) -> Dict[str, Optional[float]]:
    """Train-step time of the pair, side by side; activation and peak memory in eager mode only."""
    torch.manual_seed(0)
    coded = timm.create_model(coded_name, num_classes=num_classes).to(device).train()
    base = timm.create_model(base_name, num_classes=num_classes).to(device).train()
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(num_classes, (batch,), device=device)
    models = {'coded': coded, 'base': base}
    steps = {k: train_step_fn(torch.compile(m) if compiled else m, x, y, k == 'coded', amp) for k, m in models.items()}
    warmup = 5 if device.type == 'cuda' else 2  # cudnn.benchmark picks its algorithms in the first steps
    samples = time_interleaved_samples(steps, repeats, warmup, device)
    times = {k: median(v) for k, v in samples.items()}
    ratios = sorted(a / b for a, b in zip(samples['coded'], samples['base']))  # the two steps of each round
    timing = dict(time_coded=times['coded'], time_base=times['base'], time_ratio=median(ratios),
                  ratio_lo=ratios[len(ratios) // 4], ratio_hi=ratios[-1 - len(ratios) // 4])
    if compiled:  # saved-tensor hooks and fresh-process peaks would measure (and re-run) the compiler
        return dict(timing, act_coded=None, act_base=None, act_ratio=None, peak_coded=None, peak_base=None,
                    peak_ratio=None)
    fwd = {'coded': lambda: coded(x).sum() + timm_coded.coding_loss(coded, y), 'base': lambda: base(x).sum()}
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        act = {k: activation_bytes(fn, m) for (k, fn), m in zip(fwd.items(), (coded, base))}
    peak = {'coded': peak_growth(coded_name, size, batch, num_classes, device, amp),
            'base': peak_growth(base_name, size, batch, num_classes, device, amp)}
    return dict(timing, act_coded=act['coded'] / 2 ** 20, act_base=act['base'] / 2 ** 20,
                act_ratio=act['coded'] / act['base'], peak_coded=peak['coded'], peak_base=peak['base'],
                peak_ratio=peak['coded'] / peak['base'])


def bench_block(batch: int, repeats: int, device: torch.device) -> Dict[str, float]:
    """coded_resnext50_32x4d layer4[1] (2048 -> 2048, N = 32, d = 32) on its 160 px input (5x5)."""
    torch.manual_seed(0)
    model = timm.create_model('coded_resnext50_32x4d')
    block = model.layer4[1].to(device).train()
    block.subnn_drop.rate = 0.  # identical maths in both, no random masks
    explicit = ExplicitCodedBlock(block).to(device).train()
    x = torch.randn(batch, 2048, 5, 5, device=device, requires_grad=True)
    with torch.no_grad():
        torch.testing.assert_close(block.eval()(x), explicit.eval()(x), rtol=1e-3, atol=1e-4)
    block.train(), explicit.train()

    def fb(module):
        def run():
            out = module(x)
            (out.square().mean() + block.subnn_energies.square().mean()).backward()
        return run
    fns = {'coded': fb(block), 'explicit': fb(explicit)}
    times = time_interleaved(fns, repeats * 4, device=device)
    act = {k: activation_bytes(lambda m=m: m(x), m) for k, m in (('coded', block), ('explicit', explicit))}
    return dict(time_coded=times['coded'], time_explicit=times['explicit'],
                speedup=times['explicit'] / times['coded'],
                act_coded=act['coded'] / 2 ** 20, act_explicit=act['explicit'] / 2 ** 20,
                act_ratio=act['coded'] / act['explicit'])


def allocator_env() -> Dict[str, str]:
    """The CPU allocator settings of this run (glibc tunables, a preloaded malloc)."""
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith('MALLOC_') or k == 'LD_PRELOAD'}


def env_prefix() -> str:
    """The allocator settings of this run as a shell prefix, so the command line reproduces it."""
    return ''.join(f'{k}={v} ' for k, v in allocator_env().items())


def malloc_note() -> str:
    """How the CPU allocator was configured (glibc tunables change how often large buffers are page-faulted)."""
    tun = allocator_env()
    if not tun:
        return 'glibc malloc defaults'
    return ('glibc malloc keeping freed memory in the process (' + ', '.join(f'{k}={v}' for k, v in tun.items())
            + '), as a caching allocator does: large buffers are not page-faulted anew every step')


def batch_list(arg: Optional[str], default: str) -> List[int]:
    """Comma-separated batch sizes; an explicit empty string means none."""
    return [int(b) for b in (default if arg is None else arg).split(',') if b]


def pair_row(coded: str, base: str, size: int, batch: int, amp: bool, r: Dict[str, Optional[float]]) -> str:
    """One Markdown row of the pair table (memory columns 'n/a' when not measured, i.e. compiled)."""
    precision = ', bf16 autocast' if amp else ''
    if r['act_ratio'] is None:
        act, peak = 'n/a (compiled) | n/a', 'n/a (compiled)'
    else:
        act = f'{r["act_coded"]:.1f} / {r["act_base"]:.1f} MiB | **{r["act_ratio"]:.3f}**'
        peak = f'{r["peak_coded"]:.0f} / {r["peak_base"]:.0f} MiB = **{r["peak_ratio"]:.3f}**'
    return (f'| `{coded}` vs `{base}` | {size} px, batch {batch}{precision} | {r["time_coded"] * 1e3:.1f} / '
            f'{r["time_base"] * 1e3:.1f} ms | **{r["time_ratio"]:.3f}** ({r["ratio_lo"]:.3f}-{r["ratio_hi"]:.3f}) | '
            f'{act} | {peak} |')


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
    args = parser.parse_args()
    device = torch.device(args.device)
    cuda = device.type == 'cuda'
    if cuda:
        torch.backends.cudnn.benchmark = True  # as timm's train.py
    batches = batch_list(args.batches, '32,128,256' if cuda else '8,32')
    cifar_batch = args.cifar_batch if args.cifar_batch is not None else (128 if cuda else 32)
    info = machine_info()

    rows = []
    amp_batches = batch_list(args.amp_batches, '256' if cuda and not args.compile else '')
    pairs: List[Tuple[str, str, int, int, int, bool]] = [
        ('coded_resnext50_32x4d', 'resnext50_32x4d', 160, b, 1000, False) for b in batches]
    pairs += [('coded_resnext50_32x4d', 'resnext50_32x4d', 160, b, 1000, True) for b in amp_batches]
    if cifar_batch:
        pairs += [('coded_resnext29_10x11d', 'resnext29_10x11d', 32, cifar_batch, 10, False),
                  ('coded_resnext29_20x6d', 'resnext29_20x6d', 32, cifar_batch, 100, False)]
    for coded, base, size, batch, k, amp in pairs:
        r = bench_pair(coded, base, size, batch, args.repeats, device, k, amp, args.compile)
        print(coded, batch, 'amp' if amp else 'fp32', r, flush=True)
        rows.append(pair_row(coded, base, size, batch, amp, r))
    block_rows = []
    for batch in batch_list(args.block_batches, '' if args.compile else '8,256' if cuda else '8,32'):
        blk = bench_block(batch, args.repeats, device)
        print('block', batch, blk, flush=True)
        block_rows.append(
            f'| {batch} | {blk["time_coded"] * 1e3:.2f} / {blk["time_explicit"] * 1e3:.2f} ms | '
            f'**{blk["speedup"]:.2f}x faster** | {blk["act_coded"]:.2f} / {blk["act_explicit"]:.2f} MiB | '
            f'**{blk["act_ratio"]:.3f}x** |')

    where = (f'Device: `{device}` ({torch.cuda.get_device_name(device)}), cudnn.benchmark on, TF32: convolutions '
             f'{torch.backends.cudnn.allow_tf32}, matmuls {torch.backends.cuda.matmul.allow_tf32} (torch defaults)'
             if cuda else f'Device: `cpu`, {torch.get_num_threads()} threads, {malloc_note()}')
    peak_how = ('growth of `torch.cuda.max_memory_allocated`' if cuda else 'growth of the peak RSS') + (
        ' over 3 training steps in a fresh process per model, above the process with the model built '
        '(activations, gradients, optimizer state, workspace)')
    if args.compile:
        where += '; both models under `torch.compile` (default mode), compiled in the warm-up steps'
    title = 'Coded ResNeXt vs timm ResNeXt (train step)' + (
        f' ({device.type.upper()}, torch.compile)' if args.compile
        else f', coded block vs explicit subNNs ({device.type.upper()})')
    compile_note = (' Under torch.compile only the step time is measured: saved-tensor hooks and fresh-process peaks '
                    'would measure the compiler as well.' if args.compile else '')
    body = f"""## {title}

Machine: {info}. {where}.
Command: `{env_prefix()}{command_line()}`

Train step = forward + backward + SGD (Nesterov) step; the coded step also computes 2 x coding loss. The two
models' steps alternate ({args.repeats} rounds after warm-up); time ratio = median over rounds of the ratio of
the two steps of a round (in brackets: the interquartile range of those ratios); step times are medians.
Activation memory = bytes of the distinct tensors autograd saves for backward in one forward (+ coding loss),
the part of training memory that depends on the block design (parameters, gradients and optimizer state are
identical: same parameter count). Peak memory: {peak_how}.{compile_note}

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
        key = 'bench_models_cuda' if cuda else 'bench_models_cpu_cached_malloc' if allocator_env() else 'bench_models'
        write_section(key + ('_compile' if args.compile else ''), body)


if __name__ == '__main__':
    main()
