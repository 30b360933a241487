""" Coded ResNeXt ("Towards Disentangling Information Paths with Coded ResNeXt", arXiv:2202.05343) for timm.

A Coded ResNeXt is a ResNeXt whose deeper blocks route each class through a fixed, pre-designed subset of
their N branches (subNNs). This file holds the architecture; the paper's equations live here:

* Eq. 2-3 (mean subNN energy, energy normalisation): `subnn_energies` and `normalize_subnns`
  (one fused op with dropSubNNs, `SubNNCoding`), used by `CodedBottleneck.code_subnns`.
* §3.1.3 (dropSubNNs, one mask per sample shared by the blocks of one coding scheme): `SubNNDrop`.
* Eq. 4 (ratio r = N_act / N) and the codebooks of §3.2.1: `parse_coding_ratio`, `Codebooks` and
  `timm_coded.codes` (the coding-scheme engine).
* Eq. 5-6 (coding loss, total loss) are in `timm_coded.loss`; they read the energies each coded block
  stashes on itself (`CodedBottleneck.subnn_energies`) so `forward(x)` keeps timm's signature.

The coded block never materialises the N separate subNN outputs t_n. With W the dense 1x1 expand weight
(C_out x N*d) and h the concatenated subNN features, sum_n t_n = W h (timm's `conv3`), dropSubNNs and the
normalisation are a per-group gain on h, and each energy is a quadratic form
E(t_n) = trace(G_n S_n) / (C H W) with G_n = W_n^T W_n and S_n = sum_pixels h_n h_n^T.

Blocks with r = 1 are exactly timm's `Bottleneck`; parameter names and shapes follow timm's ResNet, so a
timm `resnext50_32x4d` state_dict loads into `coded_resnext50_32x4d`.
"""
import contextlib
import math
import warnings
from fractions import Fraction
from functools import partial
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import create_classifier, get_act_layer, get_device_dtype, get_norm_layer, \
    register_notrace_function
from timm.models import build_model_with_cfg, checkpoint_seq, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from timm.models.resnet import Bottleneck, make_blocks

if TYPE_CHECKING:  # imported lazily, so `python -m timm_coded.codes` runs without importing itself twice
    from .codes import CodingScheme

__all__ = ['CodedResNeXt', 'CodedBottleneck', 'SubNNDrop', 'Codebooks', 'subnn_energies', 'normalize_subnns',
           'parse_coding_ratio']

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
FASHION_MNIST_MEAN = (0.2860,) * 3  # gray channel replicated (in_chans=3); use the first value with in_chans=1
FASHION_MNIST_STD = (0.3530,) * 3


@register_notrace_function
def subnn_energies(h: torch.Tensor, weight: torch.Tensor, num_subnns: int) -> torch.Tensor:
    """Mean output energy E(t_n) of every subNN (Eq. 2), without materialising t_n = W_n h_n.

    Args:
        h: Concatenated subNN features entering the 1x1 expand conv, (B, N*d, H, W).
        weight: Dense 1x1 expand weight (C, N*d, 1, 1).
        num_subnns: N.

    Returns:
        (B, N) float32 energies, computed in fp32 whatever the autocast state.
    """
    if torch.jit.is_scripting():
        return _energies_fp32(h, weight, num_subnns)
    with _no_autocast(h):
        return SubNNEnergy.apply(h, weight, num_subnns)


@register_notrace_function
def normalize_subnns(
        h: torch.Tensor,
        weight: torch.Tensor,
        num_subnns: int,
        eps: float,
        keep: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Energy normalisation (Eq. 3) and dropSubNNs as one per-group gain on h, without materialising t_n.

    Computes E(t_n) (Eq. 2), E_avg = mean_n E(t_n) + eps, and returns (h_n * keep_n / sqrt(E_avg) for every
    group n, E(t̄_n) = E(t_n) / E_avg). `keep` is the (B, N) dropSubNNs mask, already scaled by 1/(1-p), or
    None. The energy path runs in fp32 whatever the autocast state; the scaled h keeps h's dtype.
    """
    if torch.jit.is_scripting():
        return _normalize_subnns_autograd(h, weight, num_subnns, eps, keep)
    with _no_autocast(h):
        return SubNNCoding.apply(h, weight, keep, num_subnns, eps)


def _no_autocast(h: torch.Tensor):
    """Autocast disabled for h's device type (a no-op context where autocast does not exist, e.g. 'meta').
    Under torch.compile the availability query is skipped: Dynamo in torch 2.11 cannot trace it (it warns and
    breaks the graph in every coded block), and compiled code runs on devices that have autocast."""
    if torch.compiler.is_compiling() or torch.amp.is_autocast_available(h.device.type):
        return torch.autocast(device_type=h.device.type, enabled=False)
    return contextlib.nullcontext()


def _group_view(h: torch.Tensor, num_subnns: int) -> torch.Tensor:
    """h (B, N*d, H, W) as (B, N, d, H*W): a free view for NCHW and channels_last alike."""
    b, nd, height, width = h.shape
    if h.is_contiguous():  # NCHW
        return h.view(b, num_subnns, nd // num_subnns, height * width)
    # channels_last, through NHWC
    return h.permute(0, 2, 3, 1).reshape(b, height * width, num_subnns, nd // num_subnns).permute(0, 2, 3, 1)


def _fp32(t: torch.Tensor) -> torch.Tensor:
    """t in fp32 (fp64 kept): the precision of the energy path whatever the autocast state."""
    return t if t.dtype == torch.float32 or t.dtype == torch.float64 else t.float()


def _weight_groups(weight: torch.Tensor, num_subnns: int) -> torch.Tensor:
    """The 1x1 expand weight (C, N*d, 1, 1) as the N blocks W_n, (N, C, d), fp32; a view.
    (A contiguous copy does not pay: measured with cold caches, the copy costs what it saves in the bmm.)"""
    return _fp32(weight).reshape(weight.shape[0], num_subnns, -1).transpose(0, 1)


def _energy_scale(h: torch.Tensor, weight: torch.Tensor) -> float:
    """1 / (C H W): Eq. 2's mean over the C output channels and H x W pixels of t_n."""
    return 1. / float(weight.shape[0] * h.shape[2] * h.shape[3])


def _gram_groups(weight: torch.Tensor, num_subnns: int) -> torch.Tensor:
    """W_n^T W_n (N, d, d), fp32, by one bmm over the strided W_n views of the expand weight."""
    wg = _weight_groups(weight, num_subnns)
    return torch.bmm(wg.transpose(1, 2), wg)


def _energy_terms(
        h: torch.Tensor, weight: torch.Tensor, num_subnns: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """h as (B, N, d, HW) fp32, S_n = sum_pixels h_n h_n^T (B, N, d, d) and G_n = W_n^T W_n / (C H W) (N, d, d):
    E(t_n) = trace(G_n S_n) (Eq. 2)."""
    hv = _fp32(_group_view(h, num_subnns))
    s = torch.matmul(hv, hv.transpose(-1, -2))
    g = _gram_groups(weight, num_subnns).mul_(_energy_scale(h, weight))
    return hv, s, g


def _trace_energies(s: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """E(t_n) = trace(G_n S_n) for every sample and subNN, (B, N): Eq. 2 from `_energy_terms`."""
    return (s * g).sum(dim=(-1, -2))


def _energies_fp32(h: torch.Tensor, weight: torch.Tensor, num_subnns: int) -> torch.Tensor:
    """E(t_n) = trace(G_n S_n), Eq. 2 (differentiated by autograd on the TorchScript path)."""
    _, s, g = _energy_terms(h, weight, num_subnns)
    return _trace_energies(s, g)


def _scale_groups(h: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """h_n * gain_n for every group n; gain (B, N). Keeps h's dtype and memory format."""
    b, c, height, width = h.shape
    n = gain.shape[1]
    gain = gain.to(h.dtype)
    if h.is_contiguous():
        return (h.view(b, n, (c // n) * height * width) * gain.unsqueeze(-1)).view(b, c, height, width)
    return h * gain.unsqueeze(-1).expand(b, n, c // n).reshape(b, c, 1, 1)


def _normalize_subnns_autograd(
        h: torch.Tensor, weight: torch.Tensor, num_subnns: int, eps: float, keep: Optional[torch.Tensor],
) -> Tuple[torch.Tensor, torch.Tensor]:
    """`normalize_subnns` differentiated by autograd (TorchScript path and the definition SubNNCoding follows)."""
    energy = _energies_fp32(h, weight, num_subnns)
    e_avg = energy.mean(dim=1, keepdim=True) + eps
    gain = torch.rsqrt(e_avg).expand(energy.shape)
    if keep is not None:
        gain = gain * keep
    return _scale_groups(h, gain), energy / e_avg


def _energy_grad_w(weight: torch.Tensor, s: torch.Tensor, coef: torch.Tensor, scale: float) -> torch.Tensor:
    """dL/dW_n = scale W_n S̄_n with S̄_n = sum_b coef_bn S_bn (G_n, S_n symmetric; coef = 2 dL/dE, (B, N) or (B, 1)).

    Two batched products over n and no weight-sized temporary: S̄ as (N, 1, B) x (N, B, d*d), then W_n S̄_n
    written straight into the (C, N, d) layout of the weight (BLAS takes its row stride N*d as it is). Under
    torch.compile the product goes through a temporary instead: Dynamo breaks the graph at out= into a view."""
    b, n, d, _ = s.shape
    coef_n = (coef * scale).expand(b, n).t().contiguous().unsqueeze(1)  # (N, 1, B)
    s_bar = torch.bmm(coef_n, s.view(b, n, d * d).transpose(0, 1)).view(n, d, d)
    wg = _weight_groups(weight, n)
    if torch.compiler.is_compiling():
        return torch.bmm(wg, s_bar).transpose(0, 1).reshape(weight.shape).to(weight.dtype)
    grad = torch.empty(weight.shape[0], n, d, dtype=s.dtype, device=s.device)
    torch.bmm(wg, s_bar, out=grad.transpose(0, 1))
    return grad.view(weight.shape).to(weight.dtype)


def _energy_grad_h(hv: torch.Tensor, g: torch.Tensor, coef: torch.Tensor, out: Optional[torch.Tensor] = None):
    """dL/dh_bn = coef_bn G_n h_bn in the group view (B, N, d, HW), fp32; into `out` (like hv) if given."""
    gc = g * coef[:, :, None, None]
    return torch.matmul(gc, hv) if out is None else torch.matmul(gc, hv, out=out)


class SubNNEnergy(torch.autograd.Function):
    """`_energies_fp32` with a hand-written backward (about half the work of autograd's):
    dE_bn/dh_bn = 2 G_n h_bn and dL/dW_n = 2 W_n S̄_n / (CHW), S̄_n = sum_b (dL/dE_bn) S_bn."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, num_subnns: int) -> torch.Tensor:
        _, s, g = _energy_terms(h, weight, num_subnns)
        ctx.save_for_backward(h, weight, s, g)
        ctx.num_subnns, ctx.scale = num_subnns, _energy_scale(h, weight)
        return _trace_energies(s, g)

    @staticmethod
    def backward(ctx, grad_e: torch.Tensor):
        h, weight, s, g = ctx.saved_tensors
        coef = grad_e.to(s.dtype) * 2.  # (B, N)
        grad_h = grad_w = None
        if ctx.needs_input_grad[0]:
            hv = _fp32(_group_view(h, ctx.num_subnns))
            grad_h = _energy_grad_h(hv, g, coef).reshape(h.shape).to(h.dtype)
        if ctx.needs_input_grad[1]:
            grad_w = _energy_grad_w(weight, s, coef, ctx.scale)
        return grad_h, grad_w, None


class SubNNCoding(torch.autograd.Function):
    """`_normalize_subnns_autograd` in one op with a hand-written backward. With m_b = E_avg_b, gain_bn =
    keep_bn m_b^(-1/2), a_bn = <dL/dout_bn, h_bn> and ē = E / m (the normalised energies):
    dL/dm_b = -(1/2 sum_n gain_bn a_bn + sum_n (dL/dē_bn) ē_bn) / m_b,
    dL/dE_bn = (dL/dē_bn) / m_b + (dL/dm_b) / N, then through E_bn = trace(G_n S_bn) as in SubNNEnergy;
    dL/dh_bn also gets gain_bn dL/dout_bn. The block's two uses of h (energies, scaling) share one saved
    tensor and one h-sized gradient buffer; about ten kernels each way."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, keep: Optional[torch.Tensor], num_subnns: int,
                eps: float) -> Tuple[torch.Tensor, torch.Tensor]:
        _, s, g = _energy_terms(h, weight, num_subnns)
        energy = _trace_energies(s, g)  # (B, N), Eq. 2
        e_avg = energy.mean(dim=1, keepdim=True) + eps
        energy_norm = energy / e_avg  # Eq. 3
        gain = torch.rsqrt(e_avg)
        gain = gain * keep.to(gain.dtype) if keep is not None else gain.expand(energy.shape)
        ctx.save_for_backward(h, weight, s, g, energy_norm, e_avg, gain)
        ctx.num_subnns, ctx.scale = num_subnns, _energy_scale(h, weight)
        ctx.set_materialize_grads(False)
        return _scale_groups(h, gain), energy_norm

    @staticmethod
    def backward(ctx, grad_out: Optional[torch.Tensor], grad_norm: Optional[torch.Tensor]):
        h, weight, s, g, energy_norm, e_avg, gain = ctx.saved_tensors
        n = ctx.num_subnns
        hv = _fp32(_group_view(h, n))
        go = buf = u = None
        if grad_out is not None:
            go = _group_view(grad_out, n)
            buf = go * hv  # one h-sized scratch buffer, reused for dL/dh
            a = buf.sum(dim=(-1, -2))  # dL/dgain, (B, N)
            u = 0.5 * (a * gain).sum(dim=1, keepdim=True)
        if grad_norm is not None:
            grad_norm = grad_norm.to(e_avg.dtype)
            t = (grad_norm * energy_norm).sum(dim=1, keepdim=True)
            u = t if u is None else u + t
        if u is None:
            return None, None, None, None, None
        # coef = 2 dL/dE = 2 (dL/dē - u / N) / m
        coef = (torch.sub(grad_norm, u, alpha=1. / n) if grad_norm is not None else u * (-1. / n)) / (0.5 * e_avg)
        grad_h = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_h = _energy_grad_h(hv, g, coef, out=buf)
            if go is not None:  # + gain_bn dL/dout_bn, in place
                grad_h.addcmul_(go, gain[:, :, None, None])
            grad_h = grad_h.reshape(h.shape).to(h.dtype)
        if ctx.needs_input_grad[1]:
            grad_w = _energy_grad_w(weight, s, coef, ctx.scale)
        return grad_h, grad_w, None, None, None


@register_notrace_function
def _draw_keep_mask(like: torch.Tensor, num_subnns: int, keep: float) -> torch.Tensor:
    """(B, N) fp32 Bernoulli(keep) mask / keep for the batch of `like` (an FX leaf: shapes are not traced)."""
    return torch.empty([like.shape[0], num_subnns], device=like.device).bernoulli_(keep).div_(keep)


class SubNNDrop(nn.Module):
    """dropSubNNs (§3.1.3): zero each subNN with probability `rate`, scale survivors by 1/(1-rate).

    One instance is shared by every block that uses the same coding scheme. The first such block in depth
    order (the leader) draws one (B, N) mask per forward pass; the others reuse it. Under gradient
    checkpointing the leader re-draws the identical mask, as checkpointing restores the RNG state.
    Holds no parameters or buffers, so sharing it adds nothing to the state_dict.
    """
    mask: Optional[torch.Tensor]

    def __init__(self, num_subnns: int, rate: float = 0.1):
        super().__init__()
        if not 0. <= rate < 1.:
            raise ValueError(f'drop_subnn_rate must be in [0, 1), got {rate}; use 0 to disable dropSubNNs.')
        self.num_subnns = num_subnns
        self.rate = float(rate)
        self.mask = None

    def sample(self, like: torch.Tensor) -> torch.Tensor:
        """Draw and keep a fresh (B, N) fp32 keep-mask for the batch of `like` (B, ...), scaled by 1/(1-rate)."""
        mask = _draw_keep_mask(like, self.num_subnns, 1. - self.rate)
        self.mask = mask
        return mask

    def extra_repr(self) -> str:
        return f'num_subnns={self.num_subnns}, rate={self.rate}'


class CodedBottleneck(Bottleneck):
    """timm's ResNeXt `Bottleneck` with the coded operations between the 1x1 expand conv and its BN.

    conv1 -> bn1 -> act -> grouped conv2 (the N subNNs) -> bn2 -> act -> [energy normalisation (Eq. 2-3),
    dropSubNNs] -> conv3 (= sum_n t_n) -> bn3 -> + shortcut -> act. After each forward the block keeps
    the normalised energies E(t̄_n) = E(t_n) / E_avg of its subNNs in `subnn_energies` (B, N), fp32.
    """
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
            drop_leader: bool = False,
            energy_eps: float = 1e-6,
            **kwargs,
    ):
        super().__init__(inplanes, planes, stride, downsample, cardinality=cardinality, **kwargs)
        self.num_subnns = cardinality
        self.num_active = num_active
        self.coding_ratio = num_active / cardinality  # r_l of Eq. 4
        self.coding_key = coding_key
        self.subnn_drop = subnn_drop if subnn_drop is not None else SubNNDrop(cardinality, 0.)
        self.drop_leader = drop_leader
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


RatioSpec = Union[str, int, float, Fraction]


def parse_coding_ratio(ratio: RatioSpec, num_subnns: int) -> int:
    """Number of active subNNs N_act for one stage's ratio r = N_act / N (Eq. 4).

    Accepts 'A/N' strings (e.g. '3/10'), an int N_act, or a float / Fraction ratio with r*N integral.
    """
    n = num_subnns
    if isinstance(ratio, str):
        text = ratio.strip()
        parts = text.split('/')
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(
                f"Unknown coding ratio {ratio!r}: write it as 'N_act/N' with N = {n} subNNs, e.g. '{n // 2}/{n}'.")
        act, den = int(parts[0]), int(parts[1])
        if den != n:
            raise ValueError(
                f"Coding ratio {ratio!r} has denominator {den}, but this model's blocks have N = {n} subNNs; "
                f"write it as 'N_act/{n}'.")
    elif isinstance(ratio, bool):
        raise ValueError(f'Coding ratio must be a string, int or float, got {ratio!r}.')
    elif isinstance(ratio, int):
        act = ratio
    elif isinstance(ratio, (float, Fraction)):
        act_f = float(ratio) * n
        act = int(round(act_f))
        if abs(act_f - act) > 1e-6:
            raise ValueError(f'Coding ratio {ratio} gives N_act = {act_f:g} for N = {n}; r*N must be an integer.')
    else:
        raise ValueError(f'Coding ratio must be a string, int or float, got {type(ratio).__name__} {ratio!r}.')
    if not 1 <= act <= n:
        raise ValueError(f'Coding ratio {ratio!r} gives N_act = {act}, outside 1..{n} (N = {n} subNNs).')
    return act


def _ratio_key(num_active: int, num_subnns: int) -> str:
    return f'r{num_active}_{num_subnns}'


def _normalize_ratios(coding_ratios: Union[RatioSpec, Sequence[RatioSpec]], num_stages: int) -> Tuple[RatioSpec, ...]:
    """One ratio per stage; a comma-separated string such as '10/10,5/10,3/10' is split."""
    if isinstance(coding_ratios, str):
        coding_ratios = [r for r in coding_ratios.split(',') if r.strip()]
    elif not isinstance(coding_ratios, (list, tuple)):
        coding_ratios = [coding_ratios]
    if len(coding_ratios) != num_stages:
        raise ValueError(
            f'coding_ratios needs one ratio per stage ({num_stages} stages), got {len(coding_ratios)}: '
            f'{list(coding_ratios)!r}.')
    return tuple(coding_ratios)


class Codebooks(nn.Module):
    """The coding schemes (K x N binary codebooks) of a model, one per ratio, as persistent uint8 buffers.

    Checkpoints therefore carry the codebook they were trained with. Loading checks it: a state_dict without
    codebooks (e.g. timm's plain ResNeXt weights) loads silently; one whose codebook differs from the
    model's raises, except for a different class count when the state_dict has no classifier weights
    (fine-tuning to a new head: timm drops the classifier when num_classes differs), which only warns.
    """

    def __init__(self, schemes: Mapping[str, 'CodingScheme'], device=None):
        super().__init__()
        self.head_in_checkpoint = True  # set by the model before loading (torch hands children a filtered dict)
        self.set_schemes(schemes, device=device)

    def set_schemes(self, schemes: Mapping[str, 'CodingScheme'], device=None) -> None:
        """(Re)place every codebook buffer, on `device` or where the current ones live."""
        if device is None:
            device = next(iter(self.buffers()), torch.empty(0)).device
        for key, scheme in schemes.items():
            self.register_buffer(key, torch.tensor(scheme.codewords, dtype=torch.uint8, device=device))

    def keys(self) -> List[str]:
        return [k for k, _ in self.named_buffers(recurse=False)]

    def _load_from_state_dict(
            self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        head_in_checkpoint = self.head_in_checkpoint
        for key in self.keys():
            name = prefix + key
            if name not in state_dict:
                continue  # plain ResNeXt weights carry no codebook: the model's own is kept
            ours, theirs = getattr(self, key), state_dict.pop(name)
            if tuple(theirs.shape) == tuple(ours.shape):
                if not torch.equal(theirs.to(ours.device, torch.uint8), ours):
                    error_msgs.append(_mismatch_message(key, 'different codewords', theirs, ours))
            elif theirs.dim() == 2 and theirs.shape[1] == ours.shape[1] and not head_in_checkpoint:
                warnings.warn(
                    f'Checkpoint codebook {key} is for {theirs.shape[0]} classes, the model has {ours.shape[0]}: '
                    f'keeping the model\'s codebook (fine-tuning to a new class count).')
            else:
                error_msgs.append(_mismatch_message(key, 'a different shape', theirs, ours))
        for name in [k for k in state_dict if k.startswith(prefix) and k[len(prefix):] not in self.keys()]:
            unexpected_keys.append(name)


def _mismatch_message(key: str, what: str, theirs: torch.Tensor, ours: torch.Tensor) -> str:
    return (
        f'Codebook mismatch for coding scheme {key}: the checkpoint was trained with {what} '
        f'({tuple(theirs.shape)}) than this model ({tuple(ours.shape)}). Coded blocks only work with the codebook '
        f'they were trained with: build the model with the checkpoint\'s codebook '
        f'(create_model(..., codebooks={{ratio: codewords}}), or the same num_classes / coding_ratios), '
        f'or load into the matching model.')


class CodedResNeXt(nn.Module):
    """ResNeXt whose stages carry a coding ratio; stages with r < 1 use `CodedBottleneck`.

    Follows the interface of timm's `ResNet` (same parameter names) with any number of stages and either
    the ImageNet stem (7x7/2 conv + 3x3/2 max-pool) or the CIFAR stem (3x3/1 conv, no pool).
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
            coding_ratios: One ratio per stage ('N_act/N', int N_act or float r); default all N/N.
            drop_subnn_rate: p_drop of dropSubNNs on coded blocks (§3.1.3).
            codebooks: Optional user codebooks {'N_act/N' or key 'rA_N': K codewords}, overriding the
                generated / built-in coding schemes.
            coding_loss_weight: Default mu of Eq. 6 for training hooks (6 with the CIFAR stem, 2 with the
                ImageNet stem, as Table 2); trainers may override it.
            stem_type: 'imagenet' (7x7/2 + max-pool) or 'cifar' (3x3/1, no pool).
            num_classes: K; also the number of codewords of every codebook.
            energy_eps: Added to E_avg so an all-zero input never yields NaN.
        """
        super().__init__()
        if stem_type not in ('imagenet', 'cifar'):
            raise ValueError(f"stem_type must be 'imagenet' or 'cifar', got {stem_type!r}.")
        if len(channels) != len(layers) or not 1 <= len(layers) <= 4:
            raise ValueError(
                f'layers and channels need one entry per stage, 1 to 4 stages; got layers={tuple(layers)}, '
                f'channels={tuple(channels)}.')
        dd = {'device': device, 'dtype': dtype}
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.grad_checkpointing = False
        self.num_subnns = cardinality
        self.stem_type = stem_type
        if coding_loss_weight is None:
            coding_loss_weight = 6. if stem_type == 'cifar' else 2.
        self.coding_loss_weight = float(coding_loss_weight)
        act_layer = get_act_layer(act_layer)
        norm_layer = get_norm_layer(norm_layer)

        ratios = ((cardinality,) * len(layers) if coding_ratios is None
                  else _normalize_ratios(coding_ratios, len(layers)))
        self.stage_active = tuple(parse_coding_ratio(r, cardinality) for r in ratios)
        self.coding_ratios = tuple(f'{a}/{cardinality}' for a in self.stage_active)
        self._user_codebooks = _parse_user_codebooks(codebooks, cardinality)
        self.codebooks = None  # registered after the head, so features_only never runs it

        # Stem
        inplanes = 64
        if stem_type == 'cifar':
            self.conv1 = nn.Conv2d(in_chans, inplanes, kernel_size=3, stride=1, padding=1, bias=False, **dd)
        else:
            self.conv1 = nn.Conv2d(in_chans, inplanes, kernel_size=7, stride=2, padding=3, bias=False, **dd)
        self.bn1 = norm_layer(inplanes, **dd)
        self.act1 = act_layer(inplace=True)
        self.feature_info = [dict(num_chs=inplanes, reduction=1 if stem_type == 'cifar' else 2, module='act1')]
        self.maxpool = nn.Identity() if stem_type == 'cifar' else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        # Stages: plain timm Bottleneck where r = 1, CodedBottleneck elsewhere (one SubNNDrop per scheme)
        block_fns = self._stage_block_fns(drop_subnn_rate, energy_eps)
        stride_scale = 4 if stem_type == 'cifar' else 1  # make_blocks counts strides from a stride-4 stem
        stage_modules, stage_feature_info = make_blocks(
            block_fns, channels, layers, inplanes,
            cardinality=cardinality, base_width=base_width,
            output_stride=output_stride * stride_scale,
            act_layer=act_layer, norm_layer=norm_layer, drop_path_rate=drop_path_rate, **dd,
        )
        self.stage_names = tuple(name for name, _ in stage_modules)
        for stage in stage_modules:
            self.add_module(*stage)
        for info in stage_feature_info:
            info['reduction'] = info['reduction'] // stride_scale
        self.feature_info.extend(stage_feature_info)
        self._mark_drop_leaders()

        # Head
        self.num_features = channels[-1] * Bottleneck.expansion
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes, pool_type=global_pool, **dd)
        self.head_hidden_size = self.num_features * self.global_pool.feat_mult()
        self.codebooks = Codebooks(self._build_schemes(num_classes), device=device)

        self.init_weights(zero_init_last=zero_init_last)

    # --- construction helpers -------------------------------------------------------------------------
    def _stage_block_fns(self, drop_subnn_rate: float, energy_eps: float) -> Tuple[Any, ...]:
        drops: Dict[int, SubNNDrop] = {}
        fns = []
        for act in self.stage_active:
            if act == self.num_subnns:
                fns.append(Bottleneck)
                continue
            drop = drops.setdefault(act, SubNNDrop(self.num_subnns, drop_subnn_rate))
            fn = partial(CodedBottleneck, num_active=act, coding_key=_ratio_key(act, self.num_subnns),
                         subnn_drop=drop, energy_eps=energy_eps)
            fn.expansion = Bottleneck.expansion  # make_blocks reads block_fn.expansion
            fns.append(fn)
        return tuple(fns)

    def _mark_drop_leaders(self) -> None:
        seen = set()
        for block in self.coded_blocks():
            block.drop_leader = id(block.subnn_drop) not in seen
            seen.add(id(block.subnn_drop))

    def _build_schemes(self, num_classes: int) -> Dict[str, 'CodingScheme']:
        """One coding scheme per distinct ratio r < 1: user codebook if given, else built-in / generated."""
        schemes = {}
        for act in sorted(set(self.stage_active), reverse=True):
            if act == self.num_subnns:
                continue
            key = _ratio_key(act, self.num_subnns)
            if key in self._user_codebooks:
                scheme = self._user_codebooks[key]
                if scheme.num_classes != num_classes or scheme.num_active != act:
                    raise ValueError(
                        f'Codebook for ratio {act}/{self.num_subnns} has {scheme.num_classes} codewords with '
                        f'{scheme.num_active} ones; the model needs {num_classes} codewords (num_classes) with '
                        f'{act} ones each. Pass matching codebooks, or codebooks={{}} to build new ones for '
                        f'{num_classes} classes (e.g. when fine-tuning to a new class count).')
            else:
                scheme = _scheme_for(num_classes, self.num_subnns, act)
            schemes[key] = scheme
        return schemes

    # --- coding-scheme access (used by the loss hook and the analysis tools) ---------------------------
    @torch.jit.ignore
    def named_coded_blocks(self) -> List[Tuple[str, CodedBottleneck]]:
        """(name, block) of the coded blocks (ratio < 1) in depth order."""
        return [(n, m) for n, m in self.named_modules() if isinstance(m, CodedBottleneck)]

    @torch.jit.ignore
    def coded_blocks(self) -> List[CodedBottleneck]:
        """The coded blocks (ratio < 1) in depth order."""
        return [m for _, m in self.named_coded_blocks()]

    @torch.jit.ignore
    def coded_block_names(self) -> List[str]:
        return [n for n, _ in self.named_coded_blocks()]

    @torch.jit.ignore
    def coding_schemes(self) -> Dict[str, 'CodingScheme']:
        """{key: CodingScheme} for every coded ratio of the model, from its codebook buffers."""
        from .codes import CodingScheme
        return {k: CodingScheme.from_codewords(getattr(self.codebooks, k).cpu().numpy(),
                                               num_active=int(k[1:].split('_')[0]))
                for k in self.codebooks.keys()}

    @torch.jit.ignore
    def get_codebook(self, key: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(K, N) codebook of the coded blocks whose `coding_key` is `key`."""
        return getattr(self.codebooks, key).to(dtype)

    # --- timm model interface ----------------------------------------------------------------------------
    @torch.jit.ignore
    def init_weights(self, zero_init_last: bool = True) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
        if zero_init_last:
            for m in self.modules():
                if hasattr(m, 'zero_init_last'):
                    m.zero_init_last()

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, str]:
        return dict(stem=r'^conv1|bn1|maxpool', blocks=r'^layer(\d+)' if coarse else r'^layer(\d+)\.(\d+)')

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self, name_only: bool = False) -> Union[str, nn.Module]:
        return 'fc' if name_only else self.fc

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """New head for `num_classes`; the codebooks are rebuilt for the new class count."""
        dd = get_device_dtype(self)
        self.num_classes = num_classes
        if global_pool is None:
            global_pool = self.global_pool.pool_type
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes, pool_type=global_pool, **dd)
        self.head_hidden_size = self.num_features * self.global_pool.feat_mult()
        self.global_pool.train(self.training)
        self.fc.train(self.training)
        if self.codebooks is not None and self.codebooks.keys():
            self._user_codebooks = {k: v for k, v in self._user_codebooks.items() if v.num_classes == num_classes}
            self.codebooks.set_schemes(self._build_schemes(num_classes))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if self.codebooks is not None:
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
        self._mark_drop_leaders()
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

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x)
        if self.drop_rate:
            x = F.dropout(x, p=float(self.drop_rate), training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x)
        x = self.forward_head(x)
        return x


def _scheme_for(num_classes: int, num_subnns: int, num_active: int) -> 'CodingScheme':
    """Built-in or generated scheme; a clear error when N, N_act cannot give `num_classes` codewords."""
    available = math.comb(num_subnns, num_active)
    if num_classes > available:
        raise ValueError(
            f'Coding ratio {num_active}/{num_subnns} has only C({num_subnns}, {num_active}) = {available} distinct '
            f'codewords, fewer than num_classes = {num_classes}. Choose a ratio closer to 1/2, or a model with more '
            f'subNNs (cardinality).')
    from .codes import get_scheme
    return get_scheme(num_classes, num_subnns, num_active)


def _parse_user_codebooks(codebooks: Optional[Mapping[str, Any]], num_subnns: int) -> Dict[str, 'CodingScheme']:
    """{'A/N' or 'rA_N': codewords} -> {'rA_N': CodingScheme}, validated by `CodingScheme.from_codewords`."""
    from .codes import CodingScheme
    out: Dict[str, CodingScheme] = {}
    for ratio, rows in (codebooks or {}).items():
        if isinstance(ratio, str) and ratio.startswith('r') and '_' in ratio:
            ratio = ratio[1:].replace('_', '/')
        act = parse_coding_ratio(ratio, num_subnns)
        scheme = rows if isinstance(rows, CodingScheme) else CodingScheme.from_codewords(rows)
        if scheme.num_subnns != num_subnns:
            raise ValueError(
                f'Codebook for ratio {ratio!r} has codewords of length {scheme.num_subnns}; the model has '
                f'N = {num_subnns} subNNs.')
        out[_ratio_key(act, num_subnns)] = scheme
    return out


def _create_coded_resnext(variant: str, pretrained: bool = False, **kwargs) -> CodedResNeXt:
    num_stages = len(kwargs.get('layers', (3, 4, 6, 3)))
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


# No weight source (url / file / hf_hub_id) until real trained weights exist.
default_cfgs = generate_default_cfgs({
    'coded_resnext29_10x11d.cifar10': _cifar_cfg(10, CIFAR10_MEAN, CIFAR10_STD),
    'coded_resnext29_20x6d.cifar100': _cifar_cfg(100, CIFAR100_MEAN, CIFAR100_STD),
    'coded_resnext50_32x4d.in1k': _cfg(
        input_size=(3, 160, 160), pool_size=(5, 5), test_input_size=(3, 224, 224), test_pool_size=(7, 7)),
    'coded_resnext11_10x4d.fashion_mnist': _cifar_cfg(
        10, FASHION_MNIST_MEAN, FASHION_MNIST_STD, input_size=(3, 28, 28), pool_size=(7, 7)),
    'resnext11_10x4d.fashion_mnist': _cifar_cfg(
        10, FASHION_MNIST_MEAN, FASHION_MNIST_STD, input_size=(3, 28, 28), pool_size=(7, 7)),
    'resnext29_10x11d.cifar10': _cifar_cfg(10, CIFAR10_MEAN, CIFAR10_STD),
    'resnext29_20x6d.cifar100': _cifar_cfg(100, CIFAR100_MEAN, CIFAR100_STD),
})

_CIFAR29 = dict(layers=(3, 3, 3), channels=(64, 128, 256), stem_type='cifar')
_NARROW11 = dict(layers=(1, 1, 1), channels=(16, 32, 64), stem_type='cifar', cardinality=10, base_width=16,
                 num_classes=10)


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
def coded_resnext11_10x4d(pretrained: bool = False, **kwargs) -> CodedResNeXt:
    """Narrow Coded ResNeXt-11 (10x4d) sized for CPUs (Fashion-MNIST main job): 1 block per stage, planes
    16/32/64, N = 10, d = 4/8/16, ratios 10/10, 5/10, 3/10 (the CIFAR-10 coding schemes of Table 4)."""
    model_args = dict(**_NARROW11, coding_ratios=('10/10', '5/10', '3/10'))
    return _create_coded_resnext('coded_resnext11_10x4d', pretrained, **dict(model_args, **kwargs))


@register_model
def resnext11_10x4d(pretrained: bool = False, **kwargs) -> CodedResNeXt:
    """Narrow ResNeXt-11 (10x4d) baseline of `coded_resnext11_10x4d`: every ratio 10/10."""
    model_args = dict(**_NARROW11, coding_ratios=('10/10',) * 3)
    return _create_coded_resnext('resnext11_10x4d', pretrained, **dict(model_args, **kwargs))
