""" Checkpoints of `train_hooks.train`: timm's CheckpointSaver (last, model_best, checkpoint-N) and timm's resume.

`saver_kwargs` hands the saver views of the model and optimizer whose state dicts are on the CPU (XLA tensors never
reach `torch.save`), and `TrainState` in the AMP scaler's slot: scaler and LR scheduler in one entry, which timm's
`resume_task_checkpoint` restores from the same place.
"""
import logging
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Dict, Optional

import torch
from torch.utils._pytree import tree_map

from timm.task import load_task_ema_checkpoint, resume_task_checkpoint
from timm.utils import unwrap_model

from timm_coded.checkpoint import read_checkpoint

_logger = logging.getLogger(__name__)

__all__ = ['TrainState', 'saver_kwargs', 'resume_training', 'to_cpu']


def to_cpu(value: Any) -> Any:
    """A copy of nested dicts / lists / tuples with every tensor on the CPU."""
    return tree_map(lambda v: v.detach().cpu() if isinstance(v, torch.Tensor) else v, value)


def _cpu_view(obj: Any) -> SimpleNamespace:
    """`obj` whose state_dict() comes with every tensor on the CPU."""
    return SimpleNamespace(state_dict=lambda: to_cpu(obj.state_dict()))


@dataclass
class TrainState:
    """AMP loss scaler and LR scheduler, saved and restored in the checkpoint slot timm gives the loss scaler."""
    loss_scaler: Any = None
    lr_scheduler: Any = None
    state_dict_key = 'train_state'

    def state_dict(self) -> Dict[str, Any]:
        return to_cpu({'amp_scaler': self.loss_scaler.state_dict() if self.loss_scaler is not None else None,
                       'scheduler': self.lr_scheduler.state_dict() if self.lr_scheduler is not None else None})

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Load both; the scheduler only if the schedule flags did not change since (else the new flags rule, as in
        timm's train.py, which rebuilds the schedule and steps it to the resumed epoch)."""
        if self.loss_scaler is not None and state.get('amp_scaler') is not None:
            self.loss_scaler.load_state_dict(state['amp_scaler'])
        stored = state.get('scheduler')
        if self.lr_scheduler is None or stored is None:
            return
        fresh = self.lr_scheduler.state_dict()
        evolving = {'metric', 'best', 'last_epoch'}  # updated while training; the rest is configuration
        changed = sorted(k for k in set(fresh) | set(stored) if k not in evolving and fresh.get(k) != stored.get(k))
        if changed:
            _logger.warning(f'LR schedule settings differ from the checkpoint ({", ".join(changed)}): the schedule '
                            f'follows the current flags from the resumed epoch on.')
        else:
            self.lr_scheduler.load_state_dict(stored)


def saver_kwargs(optimizer: torch.optim.Optimizer, train_state: TrainState) -> Dict[str, Any]:
    """The arguments of timm's CheckpointSaver that make it write CPU tensors and the training state."""
    return dict(optimizer=_cpu_view(optimizer), amp_scaler=train_state,
                unwrap_fn=lambda model: _cpu_view(unwrap_model(model)))


def resume_training(path: str, task, optimizer=None, train_state: Optional[TrainState] = None) -> int:
    """Restore model, optimizer, AMP scaler, LR scheduler and EMA from `path` (already passed through
    `check_checkpoint`, as `train.main` does before any set-up); returns the epoch to start at."""
    start_epoch = resume_task_checkpoint(task, path, optimizer=optimizer, loss_scaler=train_state)
    if task.has_ema():
        if read_checkpoint(path).get('state_dict_ema') is None:
            _logger.warning(f'{path} holds no EMA weights: the EMA restarts from the resumed model weights.')
        load_task_ema_checkpoint(task, path)  # without EMA weights timm loads the model's ('state_dict')
    return start_epoch or 0
