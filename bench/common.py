"""Shared helpers for the benchmarks: machine info, timing, memory, and BENCHMARKS.md sections."""
import os
import platform
import re
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from statistics import median
from typing import Callable, Dict, List

import torch

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / 'BENCHMARKS.md'


def machine_info() -> str:
    """One Markdown line: CPU model, cores, load, torch/timm versions, UTC date."""
    import timm
    cpuinfo = Path('/proc/cpuinfo')
    model = re.search(r'^model name\s*:\s*(.+)$', cpuinfo.read_text(), re.M) if cpuinfo.exists() else None
    cpu = model[1].strip() if model else platform.processor() or 'unknown CPU'
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'
    return (f'{cpu}, {os.cpu_count()} cores, {gpu}, load average {load:.2f} at start; torch {torch.__version__}, '
            f'timm {timm.__version__}, Python {platform.python_version()}; '
            f'{datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}')


def command_line() -> str:
    """This run's command, shell-quoted (an empty argument such as `--amp-batches ''` survives)."""
    rel = os.path.relpath(sys.argv[0], ROOT)
    return ' '.join(['python', rel] + [shlex.quote(a) for a in sys.argv[1:]])


def write_section(name: str, body: str, path: Path = BENCHMARKS) -> None:
    """Replace (or append) the `<!-- name:start -->...<!-- name:end -->` section of BENCHMARKS.md, atomically."""
    start, end = f'<!-- {name}:start -->', f'<!-- {name}:end -->'
    block = f'{start}\n{body.rstrip()}\n{end}'
    text = path.read_text() if path.exists() else '# Benchmarks\n'
    pattern = re.compile(re.escape(start) + '.*?' + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + '\n\n' + block + '\n'
    tmp = path.with_suffix('.md.tmp')
    tmp.write_text(text)
    os.replace(tmp, path)


def time_interleaved_samples(fns: Dict[str, Callable[[], None]], repeats: int, warmup: int = 2,
                             device: str = 'cpu') -> Dict[str, List[float]]:
    """Seconds of every call of each fn, calls interleaved (a, b, a, b, ...) so drift hits all alike; on CUDA each
    call ends with a device synchronisation, so its time covers the device work."""
    sync = torch.cuda.synchronize if torch.device(device).type == 'cuda' else lambda: None
    samples: Dict[str, List[float]] = {k: [] for k in fns}
    for _ in range(warmup + repeats):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync()
            samples[key].append(time.perf_counter() - t0)
    return {k: v[warmup:] for k, v in samples.items()}  # warm-up calls dropped


def time_interleaved(fns: Dict[str, Callable[[], None]], repeats: int, warmup: int = 2,
                     device: str = 'cpu') -> Dict[str, float]:
    """Median seconds per call of each fn, calls interleaved (a, b, a, b, ...) so drift hits all alike."""
    return {k: median(v) for k, v in time_interleaved_samples(fns, repeats, warmup, device).items()}


def activation_bytes(fn: Callable[[], object], module: torch.nn.Module) -> int:
    """Bytes of the distinct storages autograd saves for backward during fn() (activation memory); storages of the
    module's parameters are not counted: weights are not activations."""
    excluded = {p.untyped_storage().data_ptr() for p in module.parameters()}
    storages = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        if storage.data_ptr() not in excluded:
            storages[storage.data_ptr()] = storage.nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(storages.values())
