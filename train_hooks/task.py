""" The coding loss (Eq. 6) in timm's training loop, without touching `forward(x)`: `CodedClassificationTask`, and
`add_coding_loss`, the step it shares with `train_hooks.timm_patch`. The maths (Eq. 5, early decoders) lives in
`timm_coded.loss`.
"""
import logging
from typing import Any, Callable, Dict, Optional, Union

import torch
import torch.nn as nn
from timm.task import ClassificationTask

from timm_coded.layers import named_coded_blocks
from timm_coded.loss import block_coding_losses, coded_state, early_decoder_scores, resolve_mu

_logger = logging.getLogger(__name__)

__all__ = ['CodedClassificationTask', 'add_coding_loss']


def add_coding_loss(result: Dict[str, Any], model: nn.Module, target: torch.Tensor, mu: float) -> Dict[str, Any]:
    """L_tot = L_class + mu * sum_l L_code,l (Eq. 6) on a task result, with its terms for logging.

    Adds 'class_loss', 'coding_loss' (sum, unweighted), 'coding_losses' (L,) and 'decoder_preds' (L, B), the early
    decoders' predictions, detached, so a trainer can log their accuracy without a host sync.
    """
    state = coded_state(model, consume=True)
    losses = block_coding_losses(state, target)
    with torch.no_grad():
        preds = torch.stack([early_decoder_scores(e.detach(), c, r).argmax(dim=1)
                             for e, c, r in zip(state.energies, state.codebooks, state.ratios)])
    coding_loss = losses.sum()
    result.update(class_loss=result['loss'], coding_loss=coding_loss, coding_losses=losses.detach(),
                  decoder_preds=preds, loss=result['loss'] + mu * coding_loss.to(result['loss'].dtype))
    return result


class CodedClassificationTask(ClassificationTask):
    """ClassificationTask whose loss is L_class + mu * coding loss (Eq. 6), for models with coded blocks.
    coding_loss_weight: mu, default $TIMM_CODED_MU or the model's own (6 CIFAR nets, 2 ImageNet); other arguments as
    timm's ClassificationTask (the task may later wrap the model in DDP or torch.compile)."""
    adds_coding_loss = True  # tells train_hooks.timm_patch not to add it a second time

    def __init__(self, model: nn.Module, criterion: Optional[Union[nn.Module, Callable]] = None,
                 coding_loss_weight: Optional[float] = None, **kwargs):
        super().__init__(model, criterion, **kwargs)
        blocks = named_coded_blocks(model)
        if not blocks:
            raise ValueError(f'CodedClassificationTask needs a model with coded blocks (a ratio < 1); got '
                             f'{type(model).__name__}. Use timm.task.ClassificationTask for other models.')
        self.coding_loss_weight = resolve_mu(model, coding_loss_weight)
        if self.verbose:
            _logger.info(f'{type(self).__name__}: coding loss active, mu={self.coding_loss_weight:g}, '
                         f'{len(blocks)} coded blocks')

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> Dict[str, torch.Tensor]:
        result = super().forward(input, target)
        return add_coding_loss(result, self.trainable_module, target, self.coding_loss_weight)
