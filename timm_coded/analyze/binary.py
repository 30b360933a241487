""" Extracted binary classifiers (§4.3): the subNNs of one class, as a physically smaller standalone module.

`extract_binary_classifier(model, k)` copies the model keeping, in every coded block, only the subNNs whose
codeword bit is 1 for class k: it slices conv1's output channels, bn1, the groups of the grouped conv2, bn2
and conv3's input channels. The stem, the r = 1 blocks, every shortcut / downsample and bn3 are copied
whole, and the final fc keeps only row k, so the module outputs a (B, 1) logit.

Energy normalisation (Eq. 3) still divides by the mean energy over all N subNNs of the block; the removed
ones contribute zero energy, so the sliced block uses E_avg = sum(kept energies) / N. The binary classifier
therefore equals the full model with every inactive subNN zeroed (`subnns.remove_subnns`) up to float
rounding. Parameter names follow the full model's (layer3.0.conv1.weight, fc.weight, ...).
"""
import copy
import os
from typing import Dict, List, Mapping, Optional, Sequence

import timm
import torch
import torch.nn as nn
from huggingface_hub import hf_hub_download
from timm.models import save_for_hf
from timm.models._hub import load_cfg_from_json
from timm.models.resnet import Bottleneck, ResNet
from torch.utils.flop_counter import FlopCounterMode

from ..checkpoint import read_checkpoint
from ..layers import subnn_energies, unwrap
from ..models import CodedBottleneck, CodedResNeXt
from .subnns import active_subnns, check_class_index, grouped_blocks, residual_blocks

__all__ = ['BinaryBottleneck', 'BinaryClassifier', 'extract_binary_classifier', 'count_parameters', 'count_flops',
           'binary_classifier_cost', 'save_binary_classifier', 'load_binary_classifier']

CONFIG_KEY = 'binary_classifier'
WEIGHTS = 'model.safetensors'


def _slice_conv(conv: nn.Conv2d, idx: torch.Tensor, dim: int, groups: int) -> nn.Conv2d:
    """A new conv holding channels `idx` of `conv`: output channels for dim 0, input channels for dim 1 (timm's
    Bottleneck convs have no bias)."""
    w = conv.weight.detach().index_select(dim, idx.to(conv.weight.device))
    new = nn.Conv2d(w.shape[1] * groups, w.shape[0], conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                    groups, False, conv.padding_mode, device=w.device, dtype=w.dtype)
    new.weight = nn.Parameter(w)
    return new


def _slice_bn(bn: nn.Module, idx: torch.Tensor) -> nn.BatchNorm2d:
    """A BatchNorm2d holding channels `idx` of `bn` (affine params and running statistics)."""
    if type(bn) is not nn.BatchNorm2d:
        raise NotImplementedError(
            f'Binary-classifier extraction slices nn.BatchNorm2d inside the subNNs; this model uses '
            f'{type(bn).__name__}. Build the model with the default norm_layer.')
    new = nn.BatchNorm2d(len(idx), bn.eps, bn.momentum, bn.affine, bn.track_running_stats,
                         device=idx.device if bn.weight is None else bn.weight.device)
    new.load_state_dict({k: v.index_select(0, idx.to(v.device)) if v.dim() else v for k, v in bn.state_dict().items()})
    return new


class BinaryBottleneck(nn.Module):
    """A ResNeXt bottleneck keeping only the subNNs `keep`, sliced as the module docstring says (Eq. 3 if coded)."""

    def __init__(self, block: Bottleneck, keep: Sequence[int]):
        super().__init__()
        num_subnns = block.conv2.groups
        if not isinstance(block.aa, nn.Identity):
            raise NotImplementedError('Binary-classifier extraction does not support anti-aliased blocks (aa_layer).')
        keep = sorted(set(int(k) for k in keep))
        idx = torch.arange(block.conv2.out_channels).view(num_subnns, -1)[keep].flatten()  # kept groups' channels
        self.num_subnns = num_subnns
        self.num_kept = len(keep)
        self.normalise = isinstance(block, CodedBottleneck)
        self.energy_eps = float(getattr(block, 'energy_eps', 1e-6))
        self.conv1 = _slice_conv(block.conv1, idx, 0, 1)
        self.bn1 = _slice_bn(block.bn1, idx)
        self.conv2 = _slice_conv(block.conv2, idx, 0, len(keep))
        self.bn2 = _slice_bn(block.bn2, idx)
        self.conv3 = _slice_conv(block.conv3, idx, 1, 1)
        for name in ('act1', 'drop_block', 'act2', 'aa', 'bn3', 'se', 'act3', 'downsample', 'drop_path'):
            setattr(self, name, copy.deepcopy(getattr(block, name)))

    def extra_repr(self) -> str:
        return f'kept={self.num_kept}/{self.num_subnns}, normalise={self.normalise}'

    def code_subnns(self, x: torch.Tensor) -> torch.Tensor:
        """Energy normalisation (Eq. 3) of a coded block, the removed subNNs counting with energy 0."""
        if self.normalise:
            energy = subnn_energies(x, self.conv3.weight, self.num_kept)  # (B, N_kept) fp32, Eq. 2
            e_avg = energy.sum(dim=1) / float(self.num_subnns) + self.energy_eps
            x = x * torch.rsqrt(e_avg).to(x.dtype)[:, None, None, None]
        return x

    forward = CodedBottleneck.forward  # the source block's forward, with code_subnns above


class BinaryClassifier(nn.Module):
    """One class's binary classifier cut from a Coded ResNeXt by `extract_binary_classifier`: (B, C, H, W) -> (B, 1)."""

    def __init__(self, model: nn.Module, class_index: int, keep: Mapping[str, Sequence[int]]):
        super().__init__()
        net = unwrap(model)
        if not isinstance(net.fc, nn.Linear):
            raise ValueError('The model has no classifier (num_classes=0): a binary classifier needs its fc layer.')
        self.class_index = int(class_index)
        self.num_classes = 1
        self.in_chans = int(getattr(net, 'in_chans', net.conv1.in_channels))
        self.num_features = net.num_features
        self.kept_subnns: Dict[str, List[int]] = {k: sorted(int(i) for i in v) for k, v in keep.items()}
        self.source_architecture = str(getattr(net, 'pretrained_cfg', {}).get('architecture', type(net).__name__))
        # timm's factory records the kwargs a model was built with; codebooks are not needed to rebuild a BC
        self.source_model_args = {k: v for k, v in getattr(net, '_model_args', {}).items() if k != 'codebooks'}
        self.source_params = count_parameters(net)
        self.pretrained_cfg = dict(getattr(net, 'pretrained_cfg', {}), num_classes=1)
        self.pretrained_cfg.pop('label_names', None)
        stages = dict.fromkeys(name.split('.')[0] for name, _ in residual_blocks(net))  # layer1, layer2, ...
        for name in ('conv1', 'bn1', 'act1', 'maxpool', 'global_pool', *stages):
            self.add_module(name, copy.deepcopy(getattr(net, name)))
        for name, keep in self.kept_subnns.items():  # the blocks with subNNs, sliced
            stage, i = name.split('.')
            getattr(self, stage)[int(i)] = BinaryBottleneck(net.get_submodule(name), keep)
        self.grad_checkpointing = False
        self.drop_rate = 0.  # no dropout before the fc row
        self.fc = nn.Linear(net.fc.in_features, 1, bias=net.fc.bias is not None,
                            device=net.fc.weight.device, dtype=net.fc.weight.dtype)
        self.fc.load_state_dict({k: v[self.class_index:self.class_index + 1] for k, v in net.fc.state_dict().items()})
        self.eval()

    # the source model's forward: stem, 1-4 stages (TorchScript-safe), global pool, fc
    forward_features = CodedResNeXt.forward_features
    forward_head = ResNet.forward_head
    forward = ResNet.forward

    @torch.jit.ignore
    def sequence(self) -> List[nn.Module]:
        """Stem modules and blocks in execution order (the head excluded)."""
        return [self.conv1, self.bn1, self.act1, self.maxpool] + [b for _, b in residual_blocks(self)]

    @torch.jit.ignore
    def prefix_length(self) -> int:
        """Number of `sequence()` modules before the first sliced block (the part every BC of a model shares)."""
        return next(i for i, m in enumerate(self.sequence()) if isinstance(m, BinaryBottleneck))

    @torch.jit.ignore
    def forward_from(self, x: torch.Tensor, start: int) -> torch.Tensor:
        """Forward from the output of `sequence()[:start]`; `forward_from(prefix(x), p) == forward(x)`."""
        for m in self.sequence()[start:]:
            x = m(x)
        return self.forward_head(x)


def extract_binary_classifier(model: nn.Module, class_index: int,
                              active: Optional[Mapping[str, Sequence[int]]] = None) -> BinaryClassifier:
    """The binary classifier of class `class_index`: only that class's active subNNs, one fc row, (B, 1) output.

    `active` ({block name: subNN indices to keep}) defaults to the codewords of `model` for the class; pass
    `active_subnns(coded_model, k)` to cut the same branches from a plain ResNeXt (the §4.3 baseline).
    """
    net = unwrap(model)
    blocks = dict(grouped_blocks(net))
    if not blocks:
        raise ValueError(f'{type(net).__name__} has no ResNeXt blocks with subNNs: binary classifiers are cut from a '
                         f'Coded ResNeXt, or with active=... from a plain ResNeXt.')
    class_index = check_class_index(net, class_index)
    if active is None:
        active = active_subnns(net, class_index)  # raises for a model without coded blocks
    unknown = [k for k in active if k not in blocks]
    if unknown:
        raise ValueError(f'Blocks {unknown} are not blocks with subNNs of this model (it has {list(blocks)}): '
                         f'the model and the codewords come from different architectures.')
    for name, keep in active.items():
        n = blocks[name].conv2.groups
        if not keep or any(not 0 <= int(i) < n for i in keep):
            raise ValueError(f'Block {name} has {n} subNNs; cannot keep {list(keep)} (keep a non-empty subset of '
                             f'0..{n - 1}).')
    return BinaryClassifier(net, class_index, active)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (conv / fc weights and biases, BN affine weight and bias; no buffers)."""
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def count_flops(module: nn.Module, input_size: Sequence[int], batch_size: int = 1) -> int:
    """FLOPs of one eval forward pass at `input_size` (C, H, W), counted by torch's FlopCounterMode. Every
    submodule's train / eval mode is restored afterwards (wrappers such as EarlyExit share their modules)."""
    p = next(module.parameters())
    x = torch.zeros(batch_size, *input_size, device=p.device, dtype=p.dtype)
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    counter = FlopCounterMode(display=False)
    with counter:
        module(x)
    for m, training in modes:
        m.training = training
    return int(counter.get_total_flops())


def binary_classifier_cost(model: nn.Module, bc: nn.Module, input_size: Sequence[int]) -> Dict[str, float]:
    """Exact parameter count and FLOPs of `bc`, and their share of the full model's."""
    net = unwrap(model)
    params, params_full = count_parameters(bc), count_parameters(net)
    flops, flops_full = count_flops(bc, input_size), count_flops(net, input_size)
    return {'params': params, 'params_full': params_full, 'param_share': params / params_full,
            'flops': flops, 'flops_full': flops_full, 'flop_share': flops / flops_full,
            'input_size': list(input_size)}


def _hub_config(bc: BinaryClassifier, label_name: Optional[str]) -> Dict:
    """config.json's 'binary_classifier' entry: what `load_binary_classifier` rebuilds `bc` from."""
    return {CONFIG_KEY: {'source_architecture': bc.source_architecture, 'source_model_args': bc.source_model_args,
                         'class_index': bc.class_index, 'kept_subnns': bc.kept_subnns, 'label_name': label_name}}


def save_binary_classifier(bc: BinaryClassifier, directory: str, label_name: Optional[str] = None) -> str:
    """Write `bc` as a Hugging Face folder (model.safetensors + config.json) with timm's `save_for_hf`; push it with
    its model card by `hub_cards.push_binary_classifier`."""
    save_for_hf(bc, directory, model_config=_hub_config(bc, label_name), safe_serialization=True)
    return directory


def load_binary_classifier(path: str) -> BinaryClassifier:
    """Rebuild a binary classifier saved by `save_binary_classifier` (a folder, or 'hf-hub:org/name')."""
    if path.startswith('hf-hub:'):
        config_path, weights_path = (hf_hub_download(path[len('hf-hub:'):], f) for f in ('config.json', WEIGHTS))
    else:
        config_path, weights_path = os.path.join(path, 'config.json'), os.path.join(path, WEIGHTS)
    state_dict = read_checkpoint(weights_path)['state_dict']  # checked first: a clear error for a damaged file
    config = load_cfg_from_json(config_path)
    if CONFIG_KEY not in config:
        raise ValueError(f'{config_path} does not describe a binary classifier (no "{CONFIG_KEY}" entry): load full '
                         f'models with timm.create_model.')
    spec = config[CONFIG_KEY]
    model_args = dict(spec.get('source_model_args') or {})
    model_args.setdefault('in_chans', config.get('model_args', {}).get('in_chans', 3))
    source = timm.create_model(spec['source_architecture'], pretrained=False, **model_args)
    bc = BinaryClassifier(source, spec['class_index'], spec['kept_subnns'])
    bc.load_state_dict(state_dict)
    return bc.eval()
