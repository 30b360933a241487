""" Which subNNs a class uses, and removing subNNs from a trained model (§4.2).

A subNN n is removed by zeroing its features h_n before the energy normalisation (footnote 3 of the paper): its
energy becomes 0, it adds nothing to the expand conv, and E_avg still divides by all N subNNs. `remove_subnns`
does this with forward hooks on the module right before the coded operations (`aa` of a ResNeXt bottleneck),
so the model itself is never changed.
"""
import contextlib
from typing import Dict, Iterator, List, Mapping, Tuple, Union

import torch
import torch.nn as nn
from timm.models.resnet import Bottleneck

from ..layers import CodedBlock, get_codebooks, named_coded_blocks, unwrap
from ..layers.subnn_coding import _scale_groups

__all__ = ['residual_blocks', 'grouped_blocks', 'coded_blocks', 'check_class_index',
           'active_subnns', 'codeword_masks', 'remove_subnns']

SubNNMask = Union[torch.Tensor, List[int]]


def residual_blocks(net: nn.Module) -> List[Tuple[str, nn.Module]]:
    """(name, block) of every residual block of a (Coded) ResNeXt's stages, in depth order."""
    stages = getattr(net, 'stage_names', None) or [f'layer{i}' for i in range(1, 5) if hasattr(net, f'layer{i}')]
    return [(f'{stage}.{i}', block) for stage in stages for i, block in enumerate(getattr(net, stage))]


def grouped_blocks(net: nn.Module) -> List[Tuple[str, Bottleneck]]:
    """(name, block) of every bottleneck whose conv2 is grouped (has subNNs), in depth order."""
    return [(n, b) for n, b in residual_blocks(net) if isinstance(b, Bottleneck) and b.conv2.groups > 1]


def coded_blocks(model: nn.Module) -> List[Tuple[str, CodedBlock]]:
    """(name, block) of the coded blocks in depth order; a clear error when there are none."""
    items = named_coded_blocks(model)
    if not items:
        raise ValueError(
            f'{type(unwrap(model)).__name__} has no coded blocks: it has no class-specific subNNs, early decoders or '
            f'codewords. Use a Coded ResNeXt (a coding ratio < 1 in some stage, e.g. '
            f'timm.create_model("coded_resnext29_10x11d")); for a plain ResNeXt pass the codewords of a coded model '
            f'explicitly (active=active_subnns(coded_model, k)).')
    return items


def check_class_index(model: nn.Module, class_index: int) -> int:
    """`class_index` as an int, or a clear error when it is not a class of the model."""
    num_classes = int(getattr(unwrap(model), 'num_classes', 0))
    if isinstance(class_index, torch.Tensor) and class_index.numel() == 1:
        class_index = int(class_index.item())
    if isinstance(class_index, bool) or not isinstance(class_index, int):
        raise ValueError(f'class_index must be an int, got {type(class_index).__name__} {class_index!r}.')
    if not 0 <= class_index < num_classes:
        raise ValueError(f'Class index {class_index} is out of range: the model has {num_classes} classes (valid '
                         f'indices 0..{num_classes - 1}).')
    return class_index


def active_subnns(model: nn.Module, class_index: int) -> Dict[str, List[int]]:
    """{coded block name: indices of the subNNs active for `class_index`}, from the model's codebooks."""
    class_index = check_class_index(model, class_index)
    books = get_codebooks(model)
    return {name: torch.nonzero(books.get(block.coding_key)[class_index] > 0.5).flatten().tolist()
            for name, block in coded_blocks(model)}


def codeword_masks(model: nn.Module, target: torch.Tensor) -> Dict[str, torch.Tensor]:
    """{coded block name: (B, N) 0/1 float mask of the subNNs active for each sample's class}."""
    books = get_codebooks(model)
    return {name: books.get(block.coding_key).to(target.device).index_select(0, target.long())
            for name, block in coded_blocks(model)}


def _as_mask(spec: SubNNMask, num_subnns: int, name: str) -> torch.Tensor:
    """(N,) or (B, N) keep-mask; a list of ints means 'keep these subNNs'."""
    if isinstance(spec, torch.Tensor):
        if spec.shape[-1] != num_subnns or spec.dim() not in (1, 2):
            raise ValueError(f'Mask for block {name} has shape {tuple(spec.shape)}; expected ({num_subnns},) or '
                             f'(B, {num_subnns}).')
        return spec.float()
    idx = [int(i) for i in spec]
    if any(not 0 <= i < num_subnns for i in idx):
        raise ValueError(f'SubNN indices {idx} for block {name} are out of range 0..{num_subnns - 1}.')
    return torch.zeros(num_subnns).index_fill_(0, torch.tensor(idx, dtype=torch.long), 1.)


def _zero_hook(mask: torch.Tensor):
    def hook(module: nn.Module, args, output: torch.Tensor) -> torch.Tensor:
        if mask.dim() == 2 and mask.shape[0] != output.shape[0]:
            raise ValueError(f'Per-sample subNN mask has {mask.shape[0]} rows but the batch has {output.shape[0]} '
                             f'samples.')
        return _scale_groups(output, mask.to(output.device, output.dtype).expand(output.shape[0], -1))
    return hook


@contextlib.contextmanager
def remove_subnns(model: nn.Module, keep: Mapping[str, SubNNMask]) -> Iterator[nn.Module]:
    """Run a (Coded) ResNeXt with subNNs removed: inside the context, block `name` ('layer3.0') keeps only the
    subNNs of `keep[name]`: a list of subNN indices, an (N,) 0/1 tensor, or a (B, N) tensor (one row per sample)."""
    blocks = dict(grouped_blocks(unwrap(model)))
    handles = []
    try:
        for name, spec in keep.items():
            if name not in blocks:
                raise ValueError(f'No block with subNNs named {name!r}; blocks are {list(blocks)}.')
            mask = _as_mask(spec, blocks[name].conv2.groups, name)
            handles.append(blocks[name].aa.register_forward_hook(_zero_hook(mask)))
        yield model
    finally:
        for h in handles:
            h.remove()
