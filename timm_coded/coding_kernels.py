""" Triton kernels for the coded block's energy path (Eq. 2-3) on CUDA.

`SubNNCoding` (coded_resnext.py) holds the maths; these kernels do its three passes over h with one
program per (sample b, subNN n), reading h in place (NCHW or channels_last, any dtype; fp32 accumulation,
fp32 dot products without TF32) instead of a handful of batched d x d matmuls and broadcast passes:

* `energy_terms`: S_bn = sum_pixels h_bn h_bn^T and E_bn = <G_n, S_bn> in one read of h (Eq. 2).
* `group_dots`: a_bn = <dL/dout_bn, h_bn> (the gradient of the per-group gain) in one read of both.
* `coding_grad_h`: dL/dh_bn = gain_bn dL/dout_bn + coef_bn G_n h_bn in one read of both and one write.

Used when h is on a CUDA device and `triton` imports (it ships with CUDA builds of torch), outside
torch.compile (Inductor fuses the reference ops itself) and TorchScript; `TIMM_CODED_TRITON=0` turns them
off. With `TRITON_INTERPRET=1` they also run, slowly, on CPU tensors: that is how the CPU test-suite checks
them (tests/test_coding_kernels.py).
"""
import os
from typing import Optional, Tuple

import torch

try:
    import triton
    import triton.language as tl
    HAS_TRITON = True
except ImportError:  # CPU builds of torch do not ship triton
    triton = tl = None
    HAS_TRITON = False

__all__ = ['HAS_TRITON', 'kernels_enabled', 'use_kernels', 'energy_terms', 'group_dots', 'coding_grad_h']

MAX_GROUP_WIDTH = 64  # d beyond this falls back to the reference ops (register pressure of the d x d tiles)
_INTERPRET = os.environ.get('TRITON_INTERPRET', '0') == '1'
NUM_WARPS = {'energy': 4, 'dots': 4, 'grad_h': 4}


def kernels_enabled() -> bool:
    """Triton importable and not switched off with TIMM_CODED_TRITON=0 (read on every call)."""
    return HAS_TRITON and os.environ.get('TIMM_CODED_TRITON', '1') != '0'


def use_kernels(h: torch.Tensor, num_subnns: int) -> bool:
    """Whether the kernels serve this h: CUDA (or the Triton interpreter), eager mode, supported shape."""
    if not kernels_enabled() or not (h.is_cuda or (_INTERPRET and h.device.type == 'cpu')):
        return False
    if torch.compiler.is_compiling() or h.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return False
    return h.shape[1] // num_subnns <= MAX_GROUP_WIDTH and h.numel() < 2 ** 31 and _pixel_stride(h) is not None


def _pixel_stride(t: torch.Tensor) -> Optional[int]:
    """Stride of the flattened pixel index p = y*W + x, or None when (H, W) do not flatten (e.g. a crop view)."""
    if t.shape[2] == 1:
        return t.stride(3)
    if t.shape[3] == 1 or t.stride(2) == t.shape[3] * t.stride(3):
        return t.stride(3) if t.shape[3] > 1 else t.stride(2)
    return None


def _strides(t: torch.Tensor) -> Tuple[int, int, int]:
    """(sample, channel, pixel) strides of a (B, C, H, W) tensor."""
    ps = _pixel_stride(t)
    if ps is None:
        raise ValueError('coding kernels need the (H, W) dims of a tensor to flatten; pass a contiguous tensor')
    return t.stride(0), t.stride(1), ps


def _tiles(d: int, pixels: int) -> Tuple[int, int]:
    """(D_PAD, BLOCK_P): d padded to a power of two >= 16 (tl.dot's minimum), pixels per step."""
    d_pad = max(16, triton.next_power_of_2(d))
    block_p = min(max(16, triton.next_power_of_2(pixels)), 4096 // d_pad)
    return d_pad, max(16, block_p)


if HAS_TRITON:
    @triton.jit
    def _energy_kernel(
            h_ptr, g_ptr, s_ptr, e_ptr, num_subnns, d, pixels, shb, shc, shp,
            D_PAD: tl.constexpr, BLOCK_P: tl.constexpr):
        pid = tl.program_id(0)  # b * N + n
        b = pid // num_subnns
        n = pid % num_subnns
        i = tl.arange(0, D_PAD)
        row_ok = i < d
        rows = h_ptr + b * shb + (n * d + i[:, None]) * shc
        acc = tl.zeros((D_PAD, D_PAD), dtype=tl.float32)
        for p0 in range(0, pixels, BLOCK_P):
            p = p0 + tl.arange(0, BLOCK_P)
            x = tl.load(rows + p[None, :] * shp, mask=row_ok[:, None] & (p[None, :] < pixels), other=0.)
            x = x.to(tl.float32)
            acc += tl.dot(x, tl.trans(x), input_precision='ieee')
        dd = i[:, None] * d + i[None, :]
        ok = row_ok[:, None] & row_ok[None, :]
        g = tl.load(g_ptr + n * d * d + dd, mask=ok, other=0.)
        tl.store(s_ptr + pid * d * d + dd, acc, mask=ok)
        tl.store(e_ptr + pid, tl.sum(tl.sum(acc * g, axis=1), axis=0))

    @triton.jit
    def _group_dot_kernel(
            go_ptr, h_ptr, a_ptr, num_subnns, d, pixels, sgb, sgc, sgp, shb, shc, shp,
            D_PAD: tl.constexpr, BLOCK_P: tl.constexpr):
        pid = tl.program_id(0)
        b = pid // num_subnns
        n = pid % num_subnns
        i = tl.arange(0, D_PAD)
        row_ok = i < d
        go_rows = go_ptr + b * sgb + (n * d + i[:, None]) * sgc
        h_rows = h_ptr + b * shb + (n * d + i[:, None]) * shc
        acc = tl.zeros((D_PAD, BLOCK_P), dtype=tl.float32)
        for p0 in range(0, pixels, BLOCK_P):
            p = p0 + tl.arange(0, BLOCK_P)
            ok = row_ok[:, None] & (p[None, :] < pixels)
            go = tl.load(go_rows + p[None, :] * sgp, mask=ok, other=0.).to(tl.float32)
            x = tl.load(h_rows + p[None, :] * shp, mask=ok, other=0.).to(tl.float32)
            acc += go * x
        tl.store(a_ptr + pid, tl.sum(tl.sum(acc, axis=1), axis=0))

    @triton.jit
    def _grad_h_kernel(
            go_ptr, h_ptr, g_ptr, gain_ptr, coef_ptr, dh_ptr, num_subnns, d, pixels,
            sgb, sgc, sgp, shb, shc, shp, sdb, sdc, sdp,
            HAS_GO: tl.constexpr, D_PAD: tl.constexpr, BLOCK_P: tl.constexpr):
        pid = tl.program_id(0)
        b = pid // num_subnns
        n = pid % num_subnns
        i = tl.arange(0, D_PAD)
        row_ok = i < d
        p = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
        ok = row_ok[:, None] & (p[None, :] < pixels)
        g = tl.load(g_ptr + n * d * d + i[:, None] * d + i[None, :], mask=row_ok[:, None] & row_ok[None, :],
                    other=0.)
        x = tl.load(h_ptr + b * shb + (n * d + i[:, None]) * shc + p[None, :] * shp, mask=ok, other=0.)
        out = tl.dot(g, x.to(tl.float32), input_precision='ieee') * tl.load(coef_ptr + pid)
        if HAS_GO:
            go = tl.load(go_ptr + b * sgb + (n * d + i[:, None]) * sgc + p[None, :] * sgp, mask=ok, other=0.)
            out += go.to(tl.float32) * tl.load(gain_ptr + pid)
        dst = dh_ptr + b * sdb + (n * d + i[:, None]) * sdc + p[None, :] * sdp
        tl.store(dst, out.to(dh_ptr.dtype.element_ty), mask=ok)


def energy_terms(h: torch.Tensor, g: torch.Tensor, num_subnns: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """S (B, N, d, d) and E = <G_n, S_bn> (B, N), fp32, from h (B, N*d, H, W) and G (N, d, d) fp32."""
    b, c, height, width = h.shape
    d, pixels = c // num_subnns, height * width
    s = torch.empty(b, num_subnns, d, d, device=h.device, dtype=torch.float32)
    e = torch.empty(b, num_subnns, device=h.device, dtype=torch.float32)
    d_pad, block_p = _tiles(d, pixels)
    _energy_kernel[(b * num_subnns,)](
        h, g.contiguous(), s, e, num_subnns, d, pixels, *_strides(h), D_PAD=d_pad, BLOCK_P=block_p,
        num_warps=NUM_WARPS['energy'])
    return s, e


def group_dots(grad_out: torch.Tensor, h: torch.Tensor, num_subnns: int) -> torch.Tensor:
    """a_bn = sum over group n's channels and pixels of grad_out * h, (B, N) fp32."""
    b, c, height, width = h.shape
    d, pixels = c // num_subnns, height * width
    a = torch.empty(b, num_subnns, device=h.device, dtype=torch.float32)
    d_pad, block_p = _tiles(d, pixels)
    _group_dot_kernel[(b * num_subnns,)](
        grad_out, h, a, num_subnns, d, pixels, *_strides(grad_out), *_strides(h), D_PAD=d_pad, BLOCK_P=block_p,
        num_warps=NUM_WARPS['dots'])
    return a


def coding_grad_h(
        h: torch.Tensor, grad_out: Optional[torch.Tensor], g: torch.Tensor, gain: torch.Tensor,
        coef: torch.Tensor, num_subnns: int) -> torch.Tensor:
    """dL/dh_bn = gain_bn grad_out_bn + coef_bn G_n h_bn, in h's dtype and memory format; gain and coef
    broadcast to (B, N)."""
    b, c, height, width = h.shape
    d, pixels = c // num_subnns, height * width
    gain, coef = (t.to(torch.float32).expand(b, num_subnns).contiguous() for t in (gain, coef))
    dh = torch.empty_like(h)
    d_pad, block_p = _tiles(d, pixels)
    go = grad_out if grad_out is not None else h  # not read when HAS_GO is False
    grid = (b * num_subnns, triton.cdiv(pixels, block_p))
    _grad_h_kernel[grid](
        go, h, g.contiguous(), gain, coef, dh, num_subnns, d, pixels,
        *_strides(go), *_strides(h), *_strides(dh), HAS_GO=grad_out is not None, D_PAD=d_pad, BLOCK_P=block_p,
        num_warps=NUM_WARPS['grad_h'])
    return dh
