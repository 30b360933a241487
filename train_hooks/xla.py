""" PyTorch/XLA (TPU, or XLA:CPU for tests) runtime of `train_hooks.train`, imported only when training on XLA.

One device, or SPMD data parallelism over every device of the host: a 1-D mesh ('data',) with the batch sharded
along it by torch_xla's parallel loader and the parameters replicated, so the partitioner all-reduces the gradients
and BatchNorm sees the whole host batch. `StepMetrics` records compile and device-to-host transfer counts per step.
"""
import json
import logging
import os
from typing import Any, Dict, List, Optional

import numpy as np

import torch_xla
import torch_xla.core.xla_model as xm
import torch_xla.debug.metrics as met
import torch_xla.distributed.parallel_loader as pl
import torch_xla.runtime as xr

from .device import Runtime

_logger = logging.getLogger(__name__)

__all__ = ['XlaRuntime', 'setup_xla', 'StepMetrics']


class XlaRuntime(Runtime):
    """A lazy XLA device: a step ends by launching its graph; host reads wait for it in a step closure."""
    is_xla = True

    def device_loader(self, loader):
        """torch_xla's parallel loader; with a mesh, 4-D image batches are sharded along the batch dimension."""
        kwargs = {}
        if self.mesh is not None:
            import torch_xla.distributed.spmd as xs
            kwargs['input_sharding'] = xs.ShardingSpec(self.mesh, ('data', None, None, None))
        return pl.MpDeviceLoader(loader, self.device, **kwargs)

    def end_step(self) -> None:
        torch_xla.sync()

    def on_host(self, fn, tensors) -> None:
        xm.add_step_closure(super().on_host, args=(fn, tensors))

    def seed(self, seed: int) -> None:
        super().seed(seed)
        xm.set_rng_state(seed, device=self.device)  # dropSubNNs masks are drawn on the device


def setup_xla(spmd: Optional[bool] = None) -> XlaRuntime:
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
    return XlaRuntime(device=device, mesh=mesh, num_devices=num_devices if spmd else 1)


def _count(metric: str) -> int:
    data = met.metric_data(metric)
    return int(data[0]) if data else 0


class StepMetrics:
    """Per-step XLA compile and device-to-host transfer counts, written as JSON (`--xla-metrics`)."""

    def __init__(self, path: str):
        self.path = path
        self.steps: List[Dict[str, Any]] = []

    def record(self, phase: str, epoch: int, batch_idx: int, logged: bool = False) -> None:
        self.steps.append(dict(phase=phase, epoch=epoch, batch=batch_idx, logged=logged,
                               compiles=_count('CompileTime'), transfers_from_device=_count('TransferFromDeviceTime')))

    def save(self) -> None:
        tmp = self.path + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(dict(steps=self.steps, report=met.short_metrics_report()), f, indent=1)
        os.replace(tmp, self.path)
