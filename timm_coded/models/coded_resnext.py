""" Coded ResNeXt for timm.

Paper: `Towards Disentangling Information Paths with Coded ResNeXt` - https://arxiv.org/abs/2202.05343

A Coded ResNeXt is a ResNeXt whose deeper stages route each class through a fixed subset of the N branches
(subNNs) of every block, chosen by a codebook. The coded operations (Eq. 2-3, dropSubNNs) live in
`timm_coded.layers`, the coding loss (Eq. 5-6) in `timm_coded.loss`, the codebooks in `timm_coded.codes`.
Blocks with ratio N/N are timm's `Bottleneck`, and parameter names follow timm's ResNet, so timm's
`resnext50_32x4d` weights load into `coded_resnext50_32x4d`.
"""
import math
from functools import partial
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import create_classifier, get_act_layer, get_norm_layer
from timm.models import build_model_with_cfg, checkpoint_seq, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from timm.models.resnet import Bottleneck, ResNet, make_blocks

from ..checkpoint import check_pretrained_file
from ..codes import CodingScheme, get_scheme
from ..data import CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD, FASHION_MNIST_MEAN, FASHION_MNIST_STD
from ..layers import Codebooks, RatioSpec, SubNNDrop, named_coded_blocks, normalize_subnns, parse_coding_ratio, \
    parse_coding_ratios, parse_ratio, ratio_key

__all__ = ['CodedResNeXt', 'CodedBottleneck']


class CodedBottleneck(Bottleneck):
    """timm's ResNeXt `Bottleneck` with energy normalisation (Eq. 2-3) and dropSubNNs on the N subNNs of conv2,
    before conv3 (= sum_n t_n). Keeps the last E(t̄_n) = E(t_n) / E_avg in `subnn_energies` (B, N), fp32."""
    subnn_energies: Optional[torch.Tensor]

    def __init__(
            self,
            inplanes: int,
            planes: int,
            stride: int = 1,
            downsample: Optional[nn.Module] = None,
            cardinality: int = 1,
            num_active: int = 1,
            coding_key: str = '',
            subnn_drop: Optional[SubNNDrop] = None,
            energy_eps: float = 1e-6,
            **kwargs,
    ):
        super().__init__(inplanes, planes, stride, downsample, cardinality=cardinality, **kwargs)
        self.num_subnns = cardinality
        self.num_active = num_active
        self.coding_ratio = num_active / cardinality  # r_l of Eq. 4
        self.coding_key = coding_key
        self.subnn_drop = subnn_drop if subnn_drop is not None else SubNNDrop(cardinality, 0.)
        self.drop_leader = False  # set by the model: the first block of a coding scheme draws the mask
        self.energy_eps = energy_eps
        self.subnn_energies = None

    def code_subnns(self, h: torch.Tensor) -> torch.Tensor:
        """Energy normalisation t̄_n = t_n / sqrt(E_avg) (Eq. 2-3) and dropSubNNs, as one gain on h."""
        keep: Optional[torch.Tensor] = None
        if self.training and self.subnn_drop.rate > 0.:
            keep = self.subnn_drop.mask
            if self.drop_leader or keep is None:
                keep = self.subnn_drop.sample(h)
        h, self.subnn_energies = normalize_subnns(h, self.conv3.weight, self.num_subnns, self.energy_eps, keep)
        return h  # E(t̄_n) of Eq. 3 kept on the block, (B, N) fp32, summing to N

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x

        x = self.conv1(x)
        x = self.bn1(x)
        x = self.act1(x)

        x = self.conv2(x)
        x = self.bn2(x)
        x = self.drop_block(x)
        x = self.act2(x)
        x = self.aa(x)

        x = self.code_subnns(x)
        x = self.conv3(x)
        x = self.bn3(x)

        if self.se is not None:
            x = self.se(x)
        if self.drop_path is not None:
            x = self.drop_path(x)
        if self.downsample is not None:
            shortcut = self.downsample(shortcut)
        x += shortcut
        x = self.act3(x)
        return x


def _coding_schemes(
        num_classes: int, num_subnns: int, stage_active: Sequence[int], codebooks: Mapping[str, CodingScheme],
) -> Dict[str, CodingScheme]:
    """One scheme per coded ratio ('r3_10' -> scheme): the user's codebook if given, else built-in / generated."""
    schemes = {}
    for act in sorted(set(stage_active) - {num_subnns}, reverse=True):
        key = ratio_key(act, num_subnns)
        scheme = codebooks.get(key)
        if scheme is None:
            if math.comb(num_subnns, act) < num_classes:
                raise ValueError(
                    f'Coding ratio {act}/{num_subnns} has only C({num_subnns}, {act}) = {math.comb(num_subnns, act)} '
                    f'distinct codewords, fewer than num_classes = {num_classes}. Choose a ratio closer to 1/2, or '
                    f'a model with more subNNs (cardinality).')
            scheme = get_scheme(num_classes, num_subnns, act)
        elif scheme.num_classes != num_classes or scheme.num_active != act:
            raise ValueError(
                f'Codebook for ratio {act}/{num_subnns} has {scheme.num_classes} codewords with {scheme.num_active} '
                f'ones; the model needs {num_classes} codewords (num_classes) with {act} ones each. Pass matching '
                f'codebooks, or codebooks={{}} to build new ones for {num_classes} classes (e.g. a new head).')
        schemes[key] = scheme
    return schemes


def _parse_codebooks(codebooks: Optional[Mapping[str, Any]], num_subnns: int) -> Dict[str, CodingScheme]:
    """{'A/N' or 'rA_N': codewords} -> {'rA_N': CodingScheme}, validated by `CodingScheme.from_codewords`."""
    out = {}
    for ratio, rows in (codebooks or {}).items():
        act = parse_coding_ratio(ratio, num_subnns)
        scheme = CodingScheme.from_codewords(rows)
        if scheme.num_subnns != num_subnns:
            raise ValueError(f'Codebook for ratio {ratio!r} has codewords of length {scheme.num_subnns}; the model '
                             f'has N = {num_subnns} subNNs.')
        out[ratio_key(act, num_subnns)] = scheme
    return out


def _stage_block_fns(stage_active: Sequence[int], num_subnns: int, drop_subnn_rate: float, energy_eps: float):
    """timm's Bottleneck for stages with ratio N/N, CodedBottleneck elsewhere (one SubNNDrop per ratio)."""
    drops: Dict[int, SubNNDrop] = {}
    fns = []
    for act in stage_active:
        if act == num_subnns:
            fns.append(Bottleneck)
            continue
        drop = drops.setdefault(act, SubNNDrop(num_subnns, drop_subnn_rate))
        fn = partial(CodedBottleneck, num_active=act, coding_key=ratio_key(act, num_subnns), subnn_drop=drop,
                     energy_eps=energy_eps)
        fn.expansion = Bottleneck.expansion  # make_blocks reads block_fn.expansion
        fns.append(fn)
    return tuple(fns)


class CodedResNeXt(nn.Module):
    """ResNeXt whose stages carry a coding ratio; stages with r < 1 use `CodedBottleneck`.

    Follows timm's `ResNet` (same parameter names), with 1-4 stages and an ImageNet or CIFAR stem.
    """

    def __init__(
            self,
            layers: Tuple[int, ...] = (3, 4, 6, 3),
            channels: Tuple[int, ...] = (64, 128, 256, 512),
            cardinality: int = 32,
            base_width: int = 4,
            coding_ratios: Union[RatioSpec, Sequence[RatioSpec], None] = None,
            drop_subnn_rate: float = 0.1,
            codebooks: Optional[Mapping[str, Any]] = None,
            coding_loss_weight: Optional[float] = None,
            stem_type: str = 'imagenet',
            num_classes: int = 1000,
            in_chans: int = 3,
            global_pool: str = 'avg',
            output_stride: int = 32,
            act_layer: Union[str, type] = nn.ReLU,
            norm_layer: Union[str, type] = nn.BatchNorm2d,
            drop_rate: float = 0.,
            drop_path_rate: float = 0.,
            zero_init_last: bool = True,
            energy_eps: float = 1e-6,
            device=None,
            dtype=None,
    ):
        """
        Args:
            layers: Blocks per stage.
            channels: Bottleneck planes per stage (block output = 4x planes).
            cardinality: N, the number of subNNs (groups) of every block.
            base_width: Bottleneck width factor; subNN width d = floor(planes * base_width / 64).
            coding_ratios: One ratio per stage ('N_act/N', int N_act or float r, or '10/10,5/10,3/10');
                default all N/N.
            drop_subnn_rate: p_drop of dropSubNNs on coded blocks (§3.1.3).
            codebooks: Optional user codebooks {'N_act/N': K codewords}, replacing the built-in / generated ones.
            coding_loss_weight: Default mu of Eq. 6 for the training hooks (6 with the CIFAR stem, 2 with the
                ImageNet stem, as Table 2).
            stem_type: 'imagenet' (7x7/2 + max-pool) or 'cifar' (3x3/1, no pool).
            num_classes: K; also the number of codewords of every codebook.
            energy_eps: Added to E_avg so an all-zero input never yields NaN.
        """
        super().__init__()
        if stem_type not in ('imagenet', 'cifar'):
            raise ValueError(f"stem_type must be 'imagenet' or 'cifar', got {stem_type!r}.")
        if len(channels) != len(layers) or not 1 <= len(layers) <= 4:
            raise ValueError(f'layers and channels need one entry per stage, 1 to 4 stages; got layers='
                             f'{tuple(layers)}, channels={tuple(channels)}.')
        dd = {'device': device, 'dtype': dtype}
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.grad_checkpointing = False
        self.num_subnns = cardinality
        self.coding_loss_weight = float(coding_loss_weight if coding_loss_weight is not None else
                                        6. if stem_type == 'cifar' else 2.)
        stage_active = (parse_coding_ratios(coding_ratios, len(layers), cardinality) if coding_ratios is not None
                        else (cardinality,) * len(layers))
        self.coding_ratios = tuple(f'{a}/{cardinality}' for a in stage_active)
        self._user_codebooks = _parse_codebooks(codebooks, cardinality)
        schemes = _coding_schemes(num_classes, cardinality, stage_active, self._user_codebooks)
        act_layer = get_act_layer(act_layer)
        norm_layer = get_norm_layer(norm_layer)

        # Stem
        inplanes = 64
        cifar = stem_type == 'cifar'
        self.conv1 = nn.Conv2d(in_chans, inplanes, kernel_size=3 if cifar else 7, stride=1 if cifar else 2,
                               padding=1 if cifar else 3, bias=False, **dd)
        self.bn1 = norm_layer(inplanes, **dd)
        self.act1 = act_layer(inplace=True)
        self.feature_info = [dict(num_chs=inplanes, reduction=1 if cifar else 2, module='act1')]
        self.maxpool = nn.Identity() if cifar else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        # Stages (make_blocks counts strides from timm's stride-4 stem)
        stride_scale = 4 if cifar else 1
        stage_modules, stage_feature_info = make_blocks(
            _stage_block_fns(stage_active, cardinality, drop_subnn_rate, energy_eps), channels, layers, inplanes,
            cardinality=cardinality, base_width=base_width, output_stride=output_stride * stride_scale,
            act_layer=act_layer, norm_layer=norm_layer, drop_path_rate=drop_path_rate, **dd,
        )
        self.stage_names = tuple(name for name, _ in stage_modules)
        for stage in stage_modules:
            self.add_module(*stage)
        for info in stage_feature_info:
            info['reduction'] = info['reduction'] // stride_scale
        self.feature_info.extend(stage_feature_info)
        seen = set()  # the first block of each coding scheme draws the dropSubNNs mask, the later ones reuse it
        for block in self.coded_blocks():
            block.drop_leader = id(block.subnn_drop) not in seen
            seen.add(id(block.subnn_drop))

        # Head, then the codebooks (after the head, so features_only never runs them)
        self.num_features = channels[-1] * Bottleneck.expansion
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes, pool_type=global_pool, **dd)
        self.head_hidden_size = self.num_features * self.global_pool.feat_mult()
        self.codebooks = Codebooks(schemes, device=device)

        self.init_weights(zero_init_last=zero_init_last)

    @torch.jit.ignore
    def coded_blocks(self) -> List['CodedBottleneck']:
        """The coded blocks (ratio < 1) in depth order."""
        return [b for _, b in named_coded_blocks(self)]

    @torch.jit.ignore
    def coding_schemes(self) -> Dict[str, CodingScheme]:
        """{'r3_10': CodingScheme} for every coded ratio, from the codebook buffers."""
        return {k: CodingScheme.from_codewords(getattr(self.codebooks, k).cpu().numpy(),
                                               num_active=parse_ratio(k)[0]) for k in self.codebooks.keys()}

    # --- timm model interface: ResNet's own methods where they fit any number of stages ---------------------
    init_weights = ResNet.init_weights
    group_matcher = ResNet.group_matcher
    set_grad_checkpointing = ResNet.set_grad_checkpointing
    get_classifier = ResNet.get_classifier
    forward_head = ResNet.forward_head
    forward = ResNet.forward

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """New head for `num_classes`; the codebooks are rebuilt for the new class count."""
        ResNet.reset_classifier(self, num_classes, global_pool)
        self._user_codebooks = {k: v for k, v in self._user_codebooks.items() if v.num_classes == num_classes}
        self.codebooks.set_schemes(_coding_schemes(
            num_classes, self.num_subnns, [parse_ratio(r)[0] for r in self.coding_ratios], self._user_codebooks))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        self.codebooks.head_in_checkpoint = f'{prefix}fc.weight' in state_dict
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _stages(self) -> List[nn.Module]:
        return [getattr(self, n) for n in self.stage_names]

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Forward features returning the stem and stage outputs selected by `indices`."""
        assert output_fmt in ('NCHW',), 'Output shape must be NCHW.'
        intermediates = []
        take_indices, max_index = feature_take_indices(len(self.stage_names) + 1, indices)

        x = self.conv1(x)
        x = self.bn1(x)
        x = self.act1(x)
        if 0 in take_indices:
            intermediates.append(x)
        x = self.maxpool(x)

        stages = self._stages()
        if stop_early:
            stages = stages[:max_index]
        for feat_idx, stage in enumerate(stages, start=1):
            if self.grad_checkpointing and not torch.jit.is_scripting():
                x = checkpoint_seq(stage, x, use_reentrant=False)
            else:
                x = stage(x)
            if feat_idx in take_indices:
                intermediates.append(x)

        if intermediates_only:
            return intermediates
        return x, intermediates

    def prune_intermediate_layers(
            self,
            indices: Union[int, List[int]] = 1,
            prune_norm: bool = False,
            prune_head: bool = True,
    ) -> List[int]:
        """Drop stages (and the head) not needed for the intermediates at `indices`."""
        take_indices, max_index = feature_take_indices(len(self.stage_names) + 1, indices)
        for name in self.stage_names[max_index:]:
            setattr(self, name, nn.Sequential())
        if max_index == 0:
            self.maxpool = nn.Identity()
        if max_index < len(self.stage_names):
            self.num_features = self.head_hidden_size = self.feature_info[max_index]['num_chs']
        if prune_head or max_index < len(self.stage_names):
            self.reset_classifier(0, '')
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.act1(x)
        x = self.maxpool(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            # non-reentrant, so the energies stashed by coded blocks keep their autograd graph
            x = checkpoint_seq(self._stages(), x, flatten=True, use_reentrant=False)
        else:
            x = self.layer1(x)
            if hasattr(self, 'layer2'):  # hasattr on a module is static under TorchScript
                x = self.layer2(x)
            if hasattr(self, 'layer3'):
                x = self.layer3(x)
            if hasattr(self, 'layer4'):
                x = self.layer4(x)
        return x


def _check_plain(variant: str, ratios: Any, num_stages: int, cardinality: int) -> None:
    """A plain baseline keeps every subNN: coding ratios other than N/N (say, from a coded recipe) are an error."""
    if ratios is not None and any(a != cardinality for a in parse_coding_ratios(ratios, num_stages, cardinality)):
        raise ValueError(f'{variant} is a plain ResNeXt baseline, so every coding ratio must be N/N; got {ratios}. '
                         f'Pass --coding-ratios {" ".join([f"{cardinality}/{cardinality}"] * num_stages)} (a coded '
                         f'recipe sets its ratios for every model), or train coded_{variant}.')


def _create_coded_resnext(variant: str, pretrained: bool = False, **kwargs) -> CodedResNeXt:
    if pretrained:
        check_pretrained_file(variant, kwargs.get('pretrained_cfg'), kwargs.get('pretrained_cfg_overlay'))
    num_stages = len(kwargs.get('layers', (3, 4, 6, 3)))
    if not variant.startswith('coded_'):
        _check_plain(variant, kwargs.get('coding_ratios'), num_stages, kwargs.get('cardinality', 32))
    return build_model_with_cfg(
        CodedResNeXt, variant, pretrained,
        feature_cfg=dict(out_indices=tuple(range(num_stages + 1))),
        **kwargs,
    )


def _cfg(**kwargs) -> Dict[str, Any]:
    return {
        'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': (7, 7),
        'crop_pct': 0.875, 'interpolation': 'bicubic',
        'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'conv1', 'classifier': 'fc',
        'license': 'apache-2.0', 'paper_ids': 'arXiv:2202.05343',
        'paper_name': 'Towards Disentangling Information Paths with Coded ResNeXt',
        **kwargs,
    }


def _cifar_cfg(num_classes: int, mean: Tuple[float, ...], std: Tuple[float, ...], **kwargs) -> Dict[str, Any]:
    return _cfg(**dict(dict(num_classes=num_classes, input_size=(3, 32, 32), pool_size=(8, 8), crop_pct=1.0,
                            interpolation='bilinear', mean=mean, std=std), **kwargs))


def _fashion_mnist_cfg() -> Dict[str, Any]:
    return _cifar_cfg(10, FASHION_MNIST_MEAN * 3, FASHION_MNIST_STD * 3, input_size=(3, 28, 28), pool_size=(7, 7))


# No weight source (url / file / hf_hub_id) until real trained weights exist.
default_cfgs = generate_default_cfgs({
    'coded_resnext29_10x11d.cifar10': _cifar_cfg(10, CIFAR10_MEAN, CIFAR10_STD),
    'coded_resnext29_20x6d.cifar100': _cifar_cfg(100, CIFAR100_MEAN, CIFAR100_STD),
    'coded_resnext50_32x4d.in1k': _cfg(
        input_size=(3, 160, 160), pool_size=(5, 5), test_input_size=(3, 224, 224), test_pool_size=(7, 7)),
    'coded_resnext23_10x4d.fashion_mnist': _fashion_mnist_cfg(),
    'resnext23_10x4d.fashion_mnist': _fashion_mnist_cfg(),
    'coded_resnext11_10x4d.fashion_mnist': _fashion_mnist_cfg(),
    'resnext11_10x4d.fashion_mnist': _fashion_mnist_cfg(),
    'resnext29_10x11d.cifar10': _cifar_cfg(10, CIFAR10_MEAN, CIFAR10_STD),
    'resnext29_20x6d.cifar100': _cifar_cfg(100, CIFAR100_MEAN, CIFAR100_STD),
})

_CIFAR29 = dict(layers=(3, 3, 3), channels=(64, 128, 256), stem_type='cifar')
_NARROW = dict(channels=(16, 32, 64), stem_type='cifar', cardinality=10, base_width=16, num_classes=10)


@register_model
def coded_resnext29_10x11d(pretrained: bool = False, **kwargs) -> CodedResNeXt:
    """Coded ResNeXt-29 (10x11d) for CIFAR-10 (Table 1): ratios 10/10, 5/10, 3/10."""
    model_args = dict(**_CIFAR29, cardinality=10, base_width=11, coding_ratios=('10/10', '5/10', '3/10'),
                      num_classes=10)
    return _create_coded_resnext('coded_resnext29_10x11d', pretrained, **dict(model_args, **kwargs))


@register_model
def coded_resnext29_20x6d(pretrained: bool = False, **kwargs) -> CodedResNeXt:
    """Coded ResNeXt-29 (20x6d) for CIFAR-100 (Table 1): ratios 20/20, 8/20, 4/20."""
    model_args = dict(**_CIFAR29, cardinality=20, base_width=6, coding_ratios=('20/20', '8/20', '4/20'),
                      num_classes=100)
    return _create_coded_resnext('coded_resnext29_20x6d', pretrained, **dict(model_args, **kwargs))


@register_model
def coded_resnext50_32x4d(pretrained: bool = False, **kwargs) -> CodedResNeXt:
    """Coded ResNeXt-50 (32x4d) for ImageNet-1k (Table 1): ratios 32/32, 32/32, 16/32, 8/32."""
    model_args = dict(layers=(3, 4, 6, 3), cardinality=32, base_width=4,
                      coding_ratios=('32/32', '32/32', '16/32', '8/32'))
    return _create_coded_resnext('coded_resnext50_32x4d', pretrained, **dict(model_args, **kwargs))


@register_model
def resnext29_10x11d(pretrained: bool = False, **kwargs) -> CodedResNeXt:
    """ResNeXt-29 (10x11d) baseline for CIFAR-10: the coded net with every ratio 10/10."""
    model_args = dict(**_CIFAR29, cardinality=10, base_width=11, coding_ratios=('10/10',) * 3, num_classes=10)
    return _create_coded_resnext('resnext29_10x11d', pretrained, **dict(model_args, **kwargs))


@register_model
def resnext29_20x6d(pretrained: bool = False, **kwargs) -> CodedResNeXt:
    """ResNeXt-29 (20x6d) baseline for CIFAR-100: the coded net with every ratio 20/20."""
    model_args = dict(**_CIFAR29, cardinality=20, base_width=6, coding_ratios=('20/20',) * 3, num_classes=100)
    return _create_coded_resnext('resnext29_20x6d', pretrained, **dict(model_args, **kwargs))


@register_model
def coded_resnext23_10x4d(pretrained: bool = False, **kwargs) -> CodedResNeXt:
    """Narrow Coded ResNeXt-23 (10x4d) sized for CPUs (Fashion-MNIST): blocks 1/3/3, planes 16/32/64, N = 10,
    d = 4/8/16, ratios 10/10, 5/10, 3/10 (Table 4's codebooks): three coded blocks in each of stages 2 and 3."""
    model_args = dict(**_NARROW, layers=(1, 3, 3), coding_ratios=('10/10', '5/10', '3/10'))
    return _create_coded_resnext('coded_resnext23_10x4d', pretrained, **dict(model_args, **kwargs))


@register_model
def resnext23_10x4d(pretrained: bool = False, **kwargs) -> CodedResNeXt:
    """Narrow ResNeXt-23 (10x4d) baseline of `coded_resnext23_10x4d`: every ratio 10/10."""
    model_args = dict(**_NARROW, layers=(1, 3, 3), coding_ratios=('10/10',) * 3)
    return _create_coded_resnext('resnext23_10x4d', pretrained, **dict(model_args, **kwargs))


@register_model
def coded_resnext11_10x4d(pretrained: bool = False, **kwargs) -> CodedResNeXt:
    """Narrow Coded ResNeXt-11 (10x4d) sized for CPUs: one block per stage, otherwise as coded_resnext23_10x4d."""
    model_args = dict(**_NARROW, layers=(1, 1, 1), coding_ratios=('10/10', '5/10', '3/10'))
    return _create_coded_resnext('coded_resnext11_10x4d', pretrained, **dict(model_args, **kwargs))


@register_model
def resnext11_10x4d(pretrained: bool = False, **kwargs) -> CodedResNeXt:
    """Narrow ResNeXt-11 (10x4d) baseline of `coded_resnext11_10x4d`: every ratio 10/10."""
    model_args = dict(**_NARROW, layers=(1, 1, 1), coding_ratios=('10/10',) * 3)
    return _create_coded_resnext('resnext11_10x4d', pretrained, **dict(model_args, **kwargs))
