""" The coded-block interface: what the coding loss and the analysis tools read from any coded model.

Any model family whose blocks satisfy `CodedBlock` (and which has one `Codebooks` child holding the codebooks)
trains with the coding loss and works with the analysis tools unchanged.
"""
from typing import List, Optional, Protocol, Tuple

import torch
import torch.nn as nn
from timm.utils import unwrap_model

from .codebooks import Codebooks

__all__ = ['CodedBlock', 'unwrap', 'named_coded_blocks', 'get_codebooks']


class CodedBlock(Protocol):
    """A block with N subNNs routed by a codebook; recognised by its `coding_key`."""
    subnn_energies: Optional[torch.Tensor]  # E(t̄_n) of the last forward pass, (B, N) fp32, sums to N
    coding_key: str  # name of its codebook in the model's `Codebooks` ('r3_10')
    coding_ratio: float  # r = N_act / N (Eq. 4)
    num_subnns: int
    num_active: int


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DDP, torch.compile, EMA and timm task wrappers."""
    return unwrap_model(getattr(model, 'trainable_module', model))


def named_coded_blocks(model: nn.Module) -> List[Tuple[str, CodedBlock]]:
    """(name, block) of every coded block of `model` (any wrapper), in depth order."""
    return [(n, m) for n, m in unwrap(model).named_modules() if isinstance(getattr(m, 'coding_key', None), str)]


def get_codebooks(model: nn.Module) -> Codebooks:
    """The model's `Codebooks` module; a clear error for a model without one."""
    net = unwrap(model)
    books = next((m for m in net.modules() if isinstance(m, Codebooks)), None)
    if books is None:
        raise ValueError(f'{type(net).__name__} has no codebooks: it is not a coded model. Use a model from '
                         f'timm_coded, e.g. timm.create_model("coded_resnext29_10x11d").')
    return books
