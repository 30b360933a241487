""" Energy normalisation (Eq. 2-3) and dropSubNNs (§3.1.3) of a coded ResNeXt block.

The block's N subNNs produce features h_n (d channels each); subNN n outputs t_n = W_n h_n, where W_n is the
n-th column block of the 1x1 expand conv. `subnn_coding_reference` computes the paper's equations on the
materialised t_n. The model never materialises them: with G_n = W_n^T W_n and S_n = sum_pixels h_n h_n^T,

    E(t_n) = trace(G_n S_n) / (C H W)                                     (Eq. 2)
    sum_n keep_n t_n / sqrt(E_avg) = W (gain * h), gain_n = keep_n / sqrt(E_avg)   (Eq. 3 + drop)

so the expand conv runs once on gain-scaled features. `normalize_subnns` is that form as one autograd op
(`SubNNCoding`) with a hand-written backward; the tests check it against the reference.
"""
import contextlib
from typing import Optional, Tuple

import torch
import torch.nn as nn

from timm.layers import register_notrace_function

__all__ = ['subnn_outputs', 'subnn_coding_reference', 'subnn_energies', 'normalize_subnns', 'SubNNDrop']


def subnn_outputs(h: torch.Tensor, weight: torch.Tensor, num_subnns: int) -> torch.Tensor:
    """The N subNN outputs t_n = W_n h_n, materialised: (B, N, C, H, W)."""
    b, _, height, width = h.shape
    hn = h.reshape(b, num_subnns, -1, height, width)
    wn = weight.reshape(weight.shape[0], num_subnns, -1)
    return torch.einsum('bndhw,cnd->bnchw', hn, wn)


def subnn_coding_reference(
        t: torch.Tensor, keep: Optional[torch.Tensor] = None, eps: float = 1e-6) -> Tuple[torch.Tensor, torch.Tensor]:
    """Eq. 2-3 and dropSubNNs as the paper writes them, on the subNN outputs t (B, N, C, H, W).

    Returns sum_n keep_n t̄_n (what enters bn3) and the normalised energies E(t̄_n) (B, N).
    """
    energy = t.pow(2).mean(dim=(2, 3, 4))                    # E(t_n), Eq. 2
    e_avg = energy.mean(dim=1, keepdim=True) + eps           # E_avg = 1/N sum_n E(t_n), Eq. 3
    t_bar = t / e_avg.sqrt()[:, :, None, None, None]         # t̄_n = t_n / sqrt(E_avg), Eq. 3
    if keep is not None:
        t_bar = t_bar * keep[:, :, None, None, None]         # dropSubNNs: keep_n in {0, 1/(1-p)}
    return t_bar.sum(dim=1), energy / e_avg                  # E(t̄_n) = E(t_n) / E_avg


# --- the fused form -----------------------------------------------------------------------------------------
def _group_view(h: torch.Tensor, num_subnns: int) -> torch.Tensor:
    """h (B, N*d, H, W) as the groups h_n, (B, N, d, H*W): a free view for NCHW and channels_last alike."""
    b, nd, height, width = h.shape
    if h.is_contiguous():
        return h.view(b, num_subnns, nd // num_subnns, height * width)
    return h.permute(0, 2, 3, 1).reshape(b, height * width, num_subnns, nd // num_subnns).permute(0, 2, 3, 1)


def _fp32(t: torch.Tensor) -> torch.Tensor:
    """t in the energy path's precision: fp32, or fp64 where t is fp64."""
    return t if t.dtype == torch.float32 or t.dtype == torch.float64 else t.float()


def _weight_groups(weight: torch.Tensor, num_subnns: int) -> torch.Tensor:
    """The expand weight (C, N*d, 1, 1) as the blocks W_n, (N, C, d), fp32; a view."""
    return _fp32(weight).reshape(weight.shape[0], num_subnns, -1).transpose(0, 1)


def _energy_scale(h: torch.Tensor, weight: torch.Tensor) -> float:
    """1 / (C H W), the mean of Eq. 2 over t_n's channels and pixels."""
    return 1. / float(weight.shape[0] * h.shape[2] * h.shape[3])


def _scale_groups(h: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """h_n * gain_bn for every group n; gain (B, N). Keeps h's dtype and memory format."""
    b, c, height, width = h.shape
    n = gain.shape[1]
    gain = gain.to(h.dtype)
    if h.is_contiguous():
        return (h.view(b, n, (c // n) * height * width) * gain.unsqueeze(-1)).view(b, c, height, width)
    return h * gain.unsqueeze(-1).expand(b, n, c // n).reshape(b, c, 1, 1)


def _no_autocast(h: torch.Tensor):
    """Autocast off for h's device type, so the energy path runs in fp32 (skipped where autocast does not exist;
    the availability query is not traced under torch.compile)."""
    if torch.compiler.is_compiling() or torch.amp.is_autocast_available(h.device.type):
        return torch.autocast(device_type=h.device.type, enabled=False)
    return contextlib.nullcontext()


def _energies(h: torch.Tensor, weight: torch.Tensor, num_subnns: int
              ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(E(t_n) (Eq. 2), S_n, G_n / (C H W)), fp32."""
    hv = _fp32(_group_view(h, num_subnns))
    wg = _weight_groups(weight, num_subnns)
    s = torch.matmul(hv, hv.transpose(-1, -2))                              # S_n = sum_pixels h_n h_n^T
    g = torch.bmm(wg.transpose(1, 2), wg).mul_(_energy_scale(h, weight))    # G_n / (C H W), G_n = W_n^T W_n
    return (s * g).sum(dim=(-1, -2)), s, g                                  # E = trace(G_n S_n) (symmetric), Eq. 2


@register_notrace_function
def subnn_energies(h: torch.Tensor, weight: torch.Tensor, num_subnns: int) -> torch.Tensor:
    """E(t_n) (Eq. 2) of every subNN, (B, N) fp32, from the features h (B, N*d, H, W) and the expand weight."""
    if torch.jit.is_scripting():
        return _energies(h, weight, num_subnns)[0]
    with _no_autocast(h):
        return _energies(h, weight, num_subnns)[0]


def _normalize_subnns_autograd(
        h: torch.Tensor, weight: torch.Tensor, num_subnns: int, eps: float, keep: Optional[torch.Tensor],
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """`normalize_subnns` differentiated by autograd, the definition `SubNNCoding` follows (and TorchScript's):
    (gain * h, E(t̄_n)), then what the backward needs: S_n, G_n / (C H W), E_avg, gain."""
    energy, s, g = _energies(h, weight, num_subnns)                      # E(t_n), Eq. 2
    e_avg = energy.mean(dim=1, keepdim=True) + eps
    gain = torch.rsqrt(e_avg)
    gain = gain * keep.to(gain.dtype) if keep is not None else gain.expand(energy.shape)
    return _scale_groups(h, gain), energy / e_avg, s, g, e_avg, gain     # E(t̄_n) = E(t_n) / E_avg, Eq. 3


@register_notrace_function
def normalize_subnns(h: torch.Tensor, weight: torch.Tensor, num_subnns: int, eps: float = 1e-6,
                     keep: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Energy normalisation (Eq. 3) and dropSubNNs as one gain on h: returns (gain * h, E(t̄_n) (B, N) fp32).

    `keep` is the (B, N) dropSubNNs mask scaled by 1/(1-p), or None. conv3(gain * h) equals the reference's
    sum_n keep_n t̄_n; the energy path runs in fp32 whatever the autocast state.
    """
    if torch.jit.is_scripting():
        return _normalize_subnns_autograd(h, weight, num_subnns, eps, keep)[:2]
    with _no_autocast(h):
        return SubNNCoding.apply(h, weight, keep, num_subnns, eps)


def _energy_grad_w(weight: torch.Tensor, s: torch.Tensor, coef: torch.Tensor, scale: float) -> torch.Tensor:
    """dL/dW_n = scale W_n S̄_n, S̄_n = sum_b coef_bn S_bn (coef = 2 dL/dE), written straight into the (C, N, d)
    view of the weight gradient (under torch.compile via a temporary: Dynamo breaks the graph at out= into a view)."""
    b, n, d, _ = s.shape
    coef_n = (coef * scale).expand(b, n).t().contiguous().unsqueeze(1)  # (N, 1, B)
    s_bar = torch.bmm(coef_n, s.view(b, n, d * d).transpose(0, 1)).view(n, d, d)
    wg = _weight_groups(weight, n)
    if torch.compiler.is_compiling():
        return torch.bmm(wg, s_bar).transpose(0, 1).reshape(weight.shape).to(weight.dtype)
    grad = torch.empty(weight.shape[0], n, d, dtype=s.dtype, device=s.device)
    torch.bmm(wg, s_bar, out=grad.transpose(0, 1))
    return grad.view(weight.shape).to(weight.dtype)


class SubNNCoding(torch.autograd.Function):
    """`_normalize_subnns_autograd` as one op with a hand-written backward (h saved once, one h-sized buffer).

    With m_b = E_avg_b, gain_bn = keep_bn m_b^(-1/2), a_bn = <dL/dout_bn, h_bn> and ē = E / m:
    dL/dm_b = -(1/2 sum_n gain_bn a_bn + sum_n dL/dē_bn ē_bn) / m_b and dL/dE_bn = dL/dē_bn / m_b + dL/dm_b / N,
    then through E_bn = trace(G_n S_bn); dL/dh_bn also gets gain_bn dL/dout_bn.
    """

    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, keep: Optional[torch.Tensor], num_subnns: int,
                eps: float) -> Tuple[torch.Tensor, torch.Tensor]:
        out, energy_norm, s, g, e_avg, gain = _normalize_subnns_autograd(h, weight, num_subnns, eps, keep)
        ctx.save_for_backward(h, weight, s, g, energy_norm, e_avg, gain)
        ctx.num_subnns, ctx.scale = num_subnns, _energy_scale(h, weight)
        ctx.set_materialize_grads(False)
        return out, energy_norm

    @staticmethod
    def backward(ctx, grad_out: Optional[torch.Tensor], grad_norm: Optional[torch.Tensor]):
        h, weight, s, g, energy_norm, e_avg, gain = ctx.saved_tensors
        n = ctx.num_subnns
        hv = _fp32(_group_view(h, n))
        go = buf = u = None
        if grad_out is not None:
            go = _group_view(grad_out, n)
            buf = go * hv  # one h-sized scratch buffer, reused for dL/dh
            u = 0.5 * (buf.sum(dim=(-1, -2)) * gain).sum(dim=1, keepdim=True)
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
            grad_h = torch.matmul(g * coef[:, :, None, None], hv, out=buf)  # dL/dh_bn = coef_bn G_n h_bn
            if go is not None:
                grad_h.addcmul_(go, gain[:, :, None, None])
            grad_h = grad_h.reshape(h.shape).to(h.dtype)
        if ctx.needs_input_grad[1]:
            grad_w = _energy_grad_w(weight, s, coef, ctx.scale)
        return grad_h, grad_w, None, None, None


# --- dropSubNNs ------------------------------------------------------------------------------------------------
@register_notrace_function
def _draw_keep_mask(like: torch.Tensor, num_subnns: int, keep: float) -> torch.Tensor:
    """(B, N) fp32 Bernoulli(keep) mask / keep for the batch of `like` (an FX leaf: shapes are not traced)."""
    return torch.empty([like.shape[0], num_subnns], device=like.device).bernoulli_(keep).div_(keep)


class SubNNDrop(nn.Module):
    """dropSubNNs (§3.1.3): zero each subNN with probability `rate`, scale survivors by 1/(1-rate).

    One instance is shared by the blocks of one coding scheme: the first of them in depth order (the leader)
    draws a (B, N) mask per forward pass, the others reuse it. Under gradient checkpointing the leader draws the
    same mask again (checkpointing restores the RNG state). No parameters or buffers.
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
        """Draw, keep and return a fresh (B, N) keep-mask for the batch of `like`, scaled by 1/(1-rate)."""
        mask = _draw_keep_mask(like, self.num_subnns, 1. - self.rate)
        self.mask = mask
        return mask

    def extra_repr(self) -> str:
        return f'num_subnns={self.num_subnns}, rate={self.rate}'
