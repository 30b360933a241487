""" The coding loss (Eq. 6) in timm's training loop, without touching `forward(x)`.

* `CodedClassificationTask`: a `timm.task.ClassificationTask` whose result adds mu * coding loss; used by
  `train_hooks.train`.
* `add_coding_loss`: the shared step, also used by `train_hooks.timm_patch` (stock timm train.py).

The maths (Eq. 5, early decoders) lives next to the model, in `timm_coded.loss`.
"""
import logging
import os
from typing import Any, Callable, Dict, Optional, Union

import torch
import torch.nn as nn
from timm.task import ClassificationTask

from timm_coded.coded_resnext import CodedResNeXt
from timm_coded.loss import block_coding_losses, coded_state, early_decoder_scores, unwrap_coded

_logger = logging.getLogger(__name__)

MU_ENV = 'TIMM_CODED_MU'


def find_coded(model: nn.Module) -> Optional[CodedResNeXt]:
    """The CodedResNeXt with coded blocks inside `model` (any wrapper), else None."""
    try:
        net = unwrap_coded(model)
    except ValueError:
        return None
    return net if net.coded_blocks() else None


def resolve_mu(net: CodedResNeXt, mu: Optional[float] = None) -> float:
    """mu of Eq. 6: explicit value, else $TIMM_CODED_MU, else the model's default (6 CIFAR, 2 ImageNet)."""
    if mu is None and os.environ.get(MU_ENV):
        try:
            mu = float(os.environ[MU_ENV])
        except ValueError:
            raise ValueError(f'{MU_ENV}={os.environ[MU_ENV]!r} is not a number: set it to mu, e.g. {MU_ENV}=2.')
    mu = net.coding_loss_weight if mu is None else float(mu)
    if mu < 0:
        raise ValueError(f'The coding loss weight mu must be >= 0, got {mu}.')
    return mu


def add_coding_loss(result: Dict[str, Any], model: nn.Module, target: torch.Tensor, mu: float) -> Dict[str, Any]:
    """L_tot = L_class + mu * sum_l L_code,l (Eq. 6) on a task result; adds the terms for logging.

    Adds 'class_loss', 'coding_loss' (sum, unweighted), 'coding_losses' (L,) and 'decoder_preds' (L, B):
    the early decoders' class predictions, detached, so a trainer can log accuracy without a host sync.
    """
    state = coded_state(model, consume=True)
    losses = block_coding_losses(state, target)
    code = losses.sum()
    with torch.no_grad():
        preds = torch.stack([early_decoder_scores(e.detach(), c, r).argmax(dim=1)
                             for e, c, r in zip(state.energies, state.codebooks, state.ratios)])
    result['class_loss'] = result['loss']
    result['coding_loss'] = code
    result['coding_losses'] = losses.detach()
    result['decoder_preds'] = preds
    result['loss'] = result['loss'] + mu * code.to(result['loss'].dtype)
    return result


class CodedClassificationTask(ClassificationTask):
    """ClassificationTask whose loss is L_class + mu * coding loss (Eq. 6) for Coded ResNeXt models.

    Args:
        model: A Coded ResNeXt (the task may later wrap it in DDP or torch.compile).
        coding_loss_weight: mu; default $TIMM_CODED_MU or the model's own (6 CIFAR nets, 2 ImageNet).
        Other arguments as timm's ClassificationTask.
    """
    adds_coding_loss = True  # tells train_hooks.timm_patch not to add it a second time

    def __init__(
            self,
            model: nn.Module,
            criterion: Optional[Union[nn.Module, Callable]] = None,
            coding_loss_weight: Optional[float] = None,
            **kwargs,
    ):
        super().__init__(model, criterion, **kwargs)
        net = find_coded(model)
        if net is None:
            raise ValueError(
                f'CodedClassificationTask needs a Coded ResNeXt with coded blocks (a ratio < 1); got '
                f'{type(model).__name__}. Use timm.task.ClassificationTask for other models.')
        self.coding_loss_weight = resolve_mu(net, coding_loss_weight)
        if self.verbose:
            _logger.info(f'{type(self).__name__}: coding loss active, mu={self.coding_loss_weight:g}, '
                         f'{len(net.coded_blocks())} coded blocks')

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> Dict[str, torch.Tensor]:
        result = super().forward(input, target)
        return add_coding_loss(result, self.trainable_module, target, self.coding_loss_weight)
