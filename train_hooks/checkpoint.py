""" Checkpoints of `train_hooks.train`: timm's CheckpointSaver (last, model_best, checkpoint-N history), with

* every tensor copied to the CPU before writing (XLA tensors never reach `torch.save`),
* the file written to a temporary name and renamed (timm's `last` swap), so a kill never leaves a torn file,
* the LR scheduler's state stored next to model, optimizer, EMA, AMP scaler and epoch, so `--resume` continues
  the run where its last completed epoch left it (a schedule changed by new flags, e.g. more --epochs, follows
  the new flags, as in timm).
"""
import argparse
import logging
import os
from typing import Any, Callable, Dict, Optional

import torch

from timm.task import load_task_ema_checkpoint, resume_task_checkpoint
from timm.utils import CheckpointSaver, unwrap_model

_logger = logging.getLogger(__name__)

__all__ = ['CpuCheckpointSaver', 'to_cpu', 'resume_training', 'read_checkpoint']


def to_cpu(value: Any) -> Any:
    """A copy of nested dicts / lists / tuples with every non-CPU tensor moved to the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu() if value.device.type != 'cpu' else value
    if isinstance(value, dict):
        return type(value)((k, to_cpu(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)) and not hasattr(value, '_fields'):
        return type(value)(to_cpu(v) for v in value)
    return value


class CpuCheckpointSaver(CheckpointSaver):
    """timm's CheckpointSaver writing CPU copies, atomically, with extra training state.

    Args:
        extra_state: Called at each save; its dict (e.g. {'scheduler': ...}) is added to the checkpoint.
        Other arguments as `timm.utils.CheckpointSaver`.
    """

    def __init__(self, *args, extra_state: Optional[Callable[[], Dict[str, Any]]] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.extra_state = extra_state

    def _save(self, save_path: str, epoch: int, metric: Optional[float] = None) -> None:
        state = {
            'epoch': epoch,
            'arch': self.args.model if self.args is not None else type(unwrap_model(self.model)).__name__.lower(),
            'optimizer': self.optimizer.state_dict(),
            'version': 2,  # epoch is the last completed epoch, resume starts at epoch + 1
        }
        if self.args is not None:
            state['args'] = self.args
        if self.amp_scaler is not None:
            state[self.amp_scaler.state_dict_key] = self.amp_scaler.state_dict()
        state.update(self.task.get_checkpoint_state(unwrap_fn=self.unwrap_fn))
        state.update(self.task.get_checkpoint_state(ema=True, unwrap_fn=self.unwrap_fn))
        if self.extra_state is not None:
            state.update(self.extra_state())
        if metric is not None:
            state['metric'] = metric
        state['saver'] = self.state_dict(epoch, metric)
        tmp_path = save_path + '.partial'
        torch.save(to_cpu(state), tmp_path)
        os.replace(tmp_path, save_path)


def read_checkpoint(path: str) -> Dict[str, Any]:
    """A training checkpoint loaded on the CPU with weights_only (argparse.Namespace allowed)."""
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(path, map_location='cpu', weights_only=True)


def resume_training(path: str, task, optimizer=None, loss_scaler=None, lr_scheduler=None) -> int:
    """Restore model, optimizer, AMP scaler, EMA and LR scheduler from `path`; returns the epoch to start at."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'--resume {path!r}: no such checkpoint. Point it at a last.pth.tar or '
                                f'checkpoint-N.pth.tar written by train_hooks.train.')
    start_epoch = resume_task_checkpoint(task, path, optimizer=optimizer, loss_scaler=loss_scaler)
    checkpoint = read_checkpoint(path)
    if task.has_ema():
        if checkpoint.get('state_dict_ema') is None:
            _logger.warning(f'{path} holds no EMA weights: the EMA restarts from the resumed model weights.')
            task.get_trainable_module(ema=True).set(unwrap_model(task.get_trainable_module()))
        else:
            load_task_ema_checkpoint(task, path)
    if lr_scheduler is not None and checkpoint.get('scheduler') is not None:
        _resume_scheduler(lr_scheduler, checkpoint['scheduler'])
    return start_epoch or 0


def _resume_scheduler(lr_scheduler, stored: Dict[str, Any]) -> None:
    """Load the saved scheduler state unless the schedule flags changed since (then the new flags rule, as
    in timm's train.py, which rebuilds the schedule and steps it to the resumed epoch)."""
    fresh = lr_scheduler.state_dict()
    evolving = {'metric', 'best', 'last_epoch'}  # updated while training; the rest is configuration
    changed = sorted(k for k in set(fresh) | set(stored) if k not in evolving and fresh.get(k) != stored.get(k))
    if changed:
        _logger.warning(f'LR schedule settings differ from the checkpoint ({", ".join(changed)}): the schedule '
                        f'follows the current flags from the resumed epoch on.')
        return
    lr_scheduler.load_state_dict(stored)
