""" Coding loss for stock timm `train.py`: `python train.py --device-modules train_hooks.timm_patch ...`.

Importing it registers the Coded ResNeXt models and patches `timm.task.ClassificationTask.forward` once, to add
mu * coding loss (Eq. 6) when the task trains a model with coded blocks; other models train exactly as before.
mu: $TIMM_CODED_MU, else the model's `coding_loss_weight` (`--model-kwargs coding_loss_weight=4`; 6 CIFAR, 2 ImageNet).
"""
import logging

from timm.task import ClassificationTask

from timm_coded.layers import named_coded_blocks
from timm_coded.loss import resolve_mu
from train_hooks.task import add_coding_loss

_logger = logging.getLogger('train')
_PATCH_FLAG = '__timm_coded_patched__'


def _coded_forward(original):
    def forward(self, input, target):
        result = original(self, input, target)
        blocks = None if getattr(self, 'adds_coding_loss', False) else named_coded_blocks(self.trainable_module)
        if not blocks:
            return result
        mu = getattr(self, '_timm_coded_mu', None)
        if mu is None:
            mu = self._timm_coded_mu = resolve_mu(self.trainable_module)
            _logger.info(f'timm_coded: coding loss active (Eq. 6), mu={mu:g}, {len(blocks)} coded blocks')
        return add_coding_loss(result, self.trainable_module, target, mu)
    setattr(forward, _PATCH_FLAG, True)
    forward.__wrapped__ = original
    return forward


def patch_classification_task() -> bool:
    """Patch ClassificationTask.forward once; returns False when it already was."""
    if getattr(ClassificationTask.forward, _PATCH_FLAG, False):
        return False
    ClassificationTask.forward = _coded_forward(ClassificationTask.forward)
    return True


patch_classification_task()
