""" PyTorch/XLA (TPU, or XLA:CPU for tests) pieces of `train_hooks.train`, imported only when training on XLA.

* One device, or every device of the host with SPMD data parallelism: a 1-D mesh ('data',) and the batch
  sharded along it by the parallel loader; parameters stay replicated, so the partitioner all-reduces the
  gradients and BatchNorm sees the whole host batch.
* `torch_xla.distributed.parallel_loader.MpDeviceLoader` feeds the device from a background thread.
* `StepMetrics` records compile and device-to-host transfer counts per step (torch_xla.debug.metrics).
"""
import json
import logging
import os
from typing import Any, Dict, List, Optional

import numpy as np
import torch

import torch_xla
import torch_xla.core.xla_model as xm
import torch_xla.debug.metrics as met
import torch_xla.distributed.parallel_loader as pl
import torch_xla.runtime as xr

_logger = logging.getLogger(__name__)

__all__ = ['setup_xla', 'device_loader', 'sync', 'step_closure', 'set_seed', 'StepMetrics', 'compile_count',
           'transfer_from_device_count']


def setup_xla(spmd: Optional[bool] = None) -> Dict[str, Any]:
    """The XLA device; with SPMD (default when the host has several devices) a 1-D 'data' mesh over all of them."""
    num_devices = xr.global_runtime_device_count()
    if spmd is None:
        spmd = num_devices > 1
    mesh = None
    if spmd:
        xr.use_spmd()
        import torch_xla.distributed.spmd as xs
        mesh = xs.Mesh(np.arange(num_devices), (num_devices,), ('data',))
    elif num_devices > 1:
        _logger.warning(f'{num_devices} XLA devices but SPMD is off: training uses one device. Drop --no-xla-spmd '
                        f'to shard each batch over all of them.')
    device = torch_xla.device()
    _logger.info(f'XLA device {device} ({xr.device_type()}), {num_devices} device(s) on the host, '
                 f'SPMD data parallel: {"on" if spmd else "off"}')
    return dict(device=device, spmd=spmd, mesh=mesh, num_devices=num_devices if spmd else 1)


def device_loader(loader, device: torch.device, mesh=None):
    """torch_xla's parallel loader; with a mesh, 4-D image batches are sharded along the batch dimension."""
    kwargs = {}
    if mesh is not None:
        import torch_xla.distributed.spmd as xs
        kwargs['input_sharding'] = xs.ShardingSpec(mesh, ('data', None, None, None))
    return pl.MpDeviceLoader(loader, device, **kwargs)


def sync() -> None:
    """Cut the lazy graph and launch it (one step)."""
    torch_xla.sync()


def step_closure(fn, args=()) -> None:
    """Run fn(*args) once the current step has executed (tensors are then materialised)."""
    xm.add_step_closure(fn, args=args)


def set_seed(seed: int, device: torch.device) -> None:
    """Seed the XLA device RNG (dropSubNNs masks drawn on device)."""
    xm.set_rng_state(seed, device=device)


def compile_count() -> int:
    data = met.metric_data('CompileTime')
    return int(data[0]) if data else 0


def transfer_from_device_count() -> int:
    data = met.metric_data('TransferFromDeviceTime')
    return int(data[0]) if data else 0


class StepMetrics:
    """Per-step XLA compile and device-to-host transfer counts, written as JSON (`--xla-metrics`)."""

    def __init__(self, path: str):
        self.path = path
        self.steps: List[Dict[str, Any]] = []

    def record(self, phase: str, epoch: int, batch_idx: int, logged: bool = False) -> None:
        self.steps.append(dict(phase=phase, epoch=epoch, batch=batch_idx, logged=logged,
                               compiles=compile_count(), transfers_from_device=transfer_from_device_count()))

    def save(self) -> None:
        tmp = self.path + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(dict(steps=self.steps, report=met.short_metrics_report()), f, indent=1)
        os.replace(tmp, self.path)
