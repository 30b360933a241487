""" Where `train_hooks.train` runs: CPU, CUDA, torchrun DDP (gloo on CPU, nccl on CUDA) or XLA (one device or SPMD).

`Runtime` hides the differences the loop needs: feeding the loader to the device, ending a step, reading tensors
on the host without a per-step sync, seeding, and reducing meters across DDP ranks.
"""
import importlib.util
import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist

from timm.utils import init_distributed_device, is_distributed_env, random_seed

_logger = logging.getLogger(__name__)

__all__ = ['Runtime', 'setup_runtime', 'default_device', 'epoch_seed']


def default_device() -> str:
    """cuda if available, else xla when $PJRT_DEVICE is set and torch_xla is installed, else cpu."""
    if torch.cuda.is_available():
        return 'cuda'
    if os.environ.get('PJRT_DEVICE') and importlib.util.find_spec('torch_xla') is not None:
        return 'xla'
    return 'cpu'


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """A seed for one epoch of one rank, so an epoch's randomness depends only on (seed, epoch, rank)."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0] & 0x7fffffff)


@dataclass
class Runtime:
    """Device and parallelism of this process; `train_hooks.xla.XlaRuntime` overrides the step methods for XLA."""
    device: torch.device
    distributed: bool = False  # torch.distributed process group (DDP)
    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    mesh: Any = None  # XLA SPMD mesh over the host's devices
    num_devices: int = 1  # devices sharing each batch (SPMD)
    is_xla = False

    @property
    def is_primary(self) -> bool:
        return self.rank == 0

    def device_loader(self, loader):
        """The loader, yielding device batches (on XLA torch_xla's parallel loader)."""
        return loader

    def end_step(self) -> None:
        """End of one training / evaluation step: on XLA cut and launch the graph; nothing elsewhere."""

    def on_host(self, fn: Callable, tensors: Sequence[torch.Tensor]) -> None:
        """fn(*cpu_tensors) without stalling the step: on XLA after the step has run, elsewhere now."""
        fn(*[t.detach().cpu() for t in tensors])

    def seed(self, seed: int) -> None:
        """Seed python, numpy, torch (CPU / CUDA) and the XLA device RNG."""
        random_seed(seed, 0)

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum over DDP ranks (identity otherwise; SPMD tensors are already global)."""
        if self.distributed:
            tensor = tensor.clone()
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor


def setup_runtime(args) -> Runtime:
    """Resolve `args.device` (see `default_device`), join the torchrun process group, or set up XLA."""
    device = args.device or default_device()
    if device.split(':')[0] == 'xla':
        if importlib.util.find_spec('torch_xla') is None:
            raise SystemExit('error: --device xla needs torch_xla, which is not installed here: build the XLA '
                             'virtualenv with `bash scripts/xla_env.sh` and run with .venv-xla/bin/python.')
        if is_distributed_env():
            raise SystemExit('error: XLA training runs as one process per host with SPMD over its devices; do not '
                             'launch it with torchrun (drop torchrun, keep --device xla).')
        from .xla import setup_xla
        args.device, args.distributed, args.world_size, args.rank, args.local_rank = 'xla', False, 1, 0, 0
        return setup_xla(args.xla_spmd)
    if args.xla_spmd:
        raise SystemExit(f'error: --xla-spmd needs --device xla, got --device {device}.')
    args.device = device
    dev = init_distributed_device(args)
    if args.distributed:
        _logger.info(f'Distributed training (DDP, {dist.get_backend()}): process {args.rank} of {args.world_size}, '
                     f'device {dev}.')
    else:
        _logger.info(f'Training on {dev}.')
    return Runtime(device=dev, distributed=args.distributed, world_size=args.world_size, rank=args.rank,
                   local_rank=args.local_rank)
