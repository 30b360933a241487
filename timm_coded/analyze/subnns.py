""" Which subNNs a class uses, and removing subNNs from a trained model (§4.2).

A subNN n of a block is removed by zeroing its features h_n before the energy normalisation (footnote 3 of
the paper): its energy becomes 0, it adds nothing to `conv3`, and E_avg still divides by all N subNNs.
`remove_subnns` does this with forward hooks on the module right before the coded operations (`aa`), so
the model itself is never changed and the hooks are gone when the context exits.
"""
import contextlib
from typing import Dict, Iterator, List, Mapping, Tuple, Union

import torch
import torch.nn as nn
from timm.models.resnet import Bottleneck, ResNet

from ..coded_resnext import CodedBottleneck, _scale_groups
from ..loss import unwrap_coded

__all__ = ['resolve_resnext', 'stage_names', 'residual_blocks', 'grouped_blocks', 'forward_stem', 'coded_block_items', 'check_class_index',
           'active_subnns', 'codeword_masks', 'remove_subnns']

SubNNMask = Union[torch.Tensor, List[int]]


def resolve_resnext(model: nn.Module) -> nn.Module:
    """The CodedResNeXt (or timm ResNet / ResNeXt) inside DDP, compile, EMA or task wrappers."""
    try:
        return unwrap_coded(model)
    except ValueError:
        inner = model
        for _ in range(8):
            if isinstance(inner, ResNet):
                return inner
            nxt = next((getattr(inner, a) for a in ('_orig_mod', 'module', 'trainable_module')
                        if isinstance(getattr(inner, a, None), nn.Module)), None)
            if nxt is None:
                break
            inner = nxt
    raise ValueError(
        f'{type(model).__name__} is neither a Coded ResNeXt nor a timm ResNet/ResNeXt: the analysis tools need a '
        f'model from timm_coded (e.g. timm.create_model("coded_resnext29_10x11d")) or timm\'s resnext*.')


def stage_names(net: nn.Module) -> Tuple[str, ...]:
    """Names of the residual stages (layer1, layer2, ...) in depth order."""
    names = getattr(net, 'stage_names', None)
    if names is None:
        names = tuple(n for n in ('layer1', 'layer2', 'layer3', 'layer4') if hasattr(net, n))
    return tuple(names)


def residual_blocks(net: nn.Module) -> List[Tuple[str, nn.Module]]:
    """(name, block) for every residual block of the stages, in depth order."""
    return [(f'{stage}.{i}', block) for stage in stage_names(net) for i, block in enumerate(getattr(net, stage))]


def grouped_blocks(net: nn.Module) -> List[Tuple[str, Bottleneck]]:
    """(name, block) for every bottleneck block whose conv2 is grouped (has subNNs), in depth order."""
    return [(n, b) for n, b in residual_blocks(net) if isinstance(b, Bottleneck) and b.conv2.groups > 1]


def forward_stem(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The stem of a (Coded) ResNeXt: conv1, bn1, act1, maxpool."""
    return net.maxpool(net.act1(net.bn1(net.conv1(x))))


def coded_block_items(net: nn.Module) -> List[Tuple[str, CodedBottleneck]]:
    """(name, block) of the coded blocks in depth order; a clear error when there are none."""
    items = [(n, b) for n, b in grouped_blocks(net) if isinstance(b, CodedBottleneck)]
    if not items:
        ratios = getattr(net, 'coding_ratios', None)
        raise ValueError(
            f'{type(net).__name__} has no coded blocks (coding ratios {ratios}): it has no class-specific subNNs, '
            f'early decoders or codewords. Use a Coded ResNeXt (a coding ratio < 1 in some stage, e.g. '
            f'timm.create_model("coded_resnext29_10x11d")); for a plain ResNeXt pass the codewords of a coded model '
            f'explicitly (active=active_subnns(coded_model, k)).')
    return items


def check_class_index(net: nn.Module, class_index: int) -> int:
    """`class_index` as int, or a clear error when it is not a class of the model."""
    num_classes = int(getattr(net, 'num_classes', 0))
    if isinstance(class_index, bool) or not isinstance(class_index, int):
        if isinstance(class_index, torch.Tensor) and class_index.numel() == 1:
            class_index = int(class_index.item())
        else:
            raise ValueError(f'class_index must be an int, got {type(class_index).__name__} {class_index!r}.')
    if not 0 <= class_index < num_classes:
        raise ValueError(
            f'Class index {class_index} is out of range: the model has {num_classes} classes '
            f'(valid indices 0..{num_classes - 1}).')
    return class_index


def active_subnns(model: nn.Module, class_index: int) -> Dict[str, List[int]]:
    """{coded block name: indices of the subNNs active for `class_index`}, read from the model's codebooks."""
    net = resolve_resnext(model)
    class_index = check_class_index(net, class_index)
    out = {}
    for name, block in coded_block_items(net):
        word = net.get_codebook(block.coding_key)[class_index]
        out[name] = torch.nonzero(word > 0.5).flatten().tolist()
    return out


def codeword_masks(model: nn.Module, target: torch.Tensor) -> Dict[str, torch.Tensor]:
    """{coded block name: (B, N) 0/1 float mask of the subNNs active for each sample's class}."""
    net = resolve_resnext(model)
    out = {}
    for name, block in coded_block_items(net):
        book = net.get_codebook(block.coding_key)
        out[name] = book.to(target.device).index_select(0, target.long())
    return out


def _as_mask(spec: SubNNMask, num_subnns: int, name: str) -> torch.Tensor:
    """(N,) or (B, N) keep-mask; a list of ints means 'keep these subNNs'."""
    if isinstance(spec, torch.Tensor):
        mask = spec.float()
        if mask.shape[-1] != num_subnns or mask.dim() not in (1, 2):
            raise ValueError(f'Mask for block {name} has shape {tuple(mask.shape)}; expected ({num_subnns},) or '
                             f'(B, {num_subnns}).')
        return mask
    idx = list(spec)
    if any(not 0 <= int(i) < num_subnns for i in idx):
        raise ValueError(f'SubNN indices {idx} for block {name} are out of range 0..{num_subnns - 1}.')
    mask = torch.zeros(num_subnns)
    mask[torch.tensor(idx, dtype=torch.long)] = 1.
    return mask


@contextlib.contextmanager
def remove_subnns(model: nn.Module, keep: Mapping[str, SubNNMask]) -> Iterator[nn.Module]:
    """Run `model` with subNNs removed: inside the context, block `name` keeps only the subNNs of `keep[name]`.

    Args:
        model: A Coded ResNeXt or ResNeXt (possibly wrapped).
        keep: {block name (e.g. 'layer3.0'): keep-mask}. A mask is a list of subNN indices to keep, an (N,) 0/1
            tensor, or a (B, N) tensor with one mask per sample of the next forward pass.
    """
    net = resolve_resnext(model)
    blocks = dict(grouped_blocks(net))
    handles = []
    try:
        for name, spec in keep.items():
            if name not in blocks:
                raise ValueError(f'No block with subNNs named {name!r}; blocks are {list(blocks)}.')
            block = blocks[name]
            mask = _as_mask(spec, block.conv2.groups, name)
            handles.append(block.aa.register_forward_hook(_zero_hook(mask, block.conv2.groups)))
        yield model
    finally:
        for h in handles:
            h.remove()


def _zero_hook(mask: torch.Tensor, num_subnns: int):
    def hook(module: nn.Module, args, output: torch.Tensor) -> torch.Tensor:
        b = output.shape[0]
        m = mask.to(output.device, output.dtype)
        m = m.expand(b, num_subnns) if m.dim() == 1 else m
        if m.shape[0] != b:
            raise ValueError(f'Per-sample subNN mask has {m.shape[0]} rows but the batch has {b} samples.')
        return _scale_groups(output, m)
    return hook
