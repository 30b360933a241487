"""The coded block's op (`SubNNCoding`) with the Triton kernels against the same op on reference torch ops.

`python tests/helpers/kernel_check.py DEVICE` checks every case in CASES; on CPU run it with TRITON_INTERPRET=1
(triton reads it at import), which is what tests/test_coding_kernels.py does.
"""
import os
import sys
from typing import Optional, Tuple

import torch

from timm_coded import coding_kernels
from timm_coded.coded_resnext import SubNNCoding

# (batch, N, d, (H, W), channels_last, dtype, dropSubNNs mask, which outputs get a gradient)
CASES = [
    (2, 4, 16, (5, 5), False, torch.float32, False, 'both'),
    (2, 4, 16, (5, 5), True, torch.float32, True, 'both'),
    (3, 5, 11, (7, 3), False, torch.float32, True, 'out'),  # d padded to 16, ragged pixel tile
    (3, 5, 11, (7, 3), True, torch.float32, False, 'energies'),  # dL/dout is None
    (2, 3, 22, (9, 9), True, torch.bfloat16, True, 'both'),
    (1, 2, 64, (20, 20), False, torch.float32, False, 'both'),  # widest group, several pixel tiles
]


def run_op(h: torch.Tensor, w: torch.Tensor, keep: Optional[torch.Tensor], n: int, g_out: torch.Tensor,
           g_energy: torch.Tensor, which: str, kernels: bool) -> Tuple[torch.Tensor, ...]:
    """Outputs and input gradients of SubNNCoding with the kernels switched on or off."""
    os.environ['TIMM_CODED_TRITON'] = '1' if kernels else '0'
    try:
        h, w = h.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
        assert coding_kernels.use_kernels(h, n) == kernels, 'kernel path not taken where expected'
        out, energy = SubNNCoding.apply(h, w, keep, n, 1e-6)
        loss = out.new_zeros((), dtype=torch.float32)
        if which in ('out', 'both'):
            loss = loss + (out.float() * g_out.float()).sum()
        if which in ('energies', 'both'):
            loss = loss + (energy * g_energy).sum()
        loss.backward()
        return out, energy, h.grad, w.grad
    finally:
        os.environ.pop('TIMM_CODED_TRITON')


def compare_paths(device: str, b: int, n: int, d: int, hw: Tuple[int, int], channels_last: bool,
                  dtype: torch.dtype, masked: bool, which: str) -> None:
    """Raise AssertionError naming the first output whose kernel result differs from the reference ops."""
    gen = torch.Generator().manual_seed(b * 1000 + n * 100 + d)
    h = torch.randn(b, n * d, *hw, generator=gen).relu().to(device, dtype)
    if channels_last:
        h = h.contiguous(memory_format=torch.channels_last)
    w = torch.randn(24, n * d, 1, 1, generator=gen).to(device)
    keep = ((torch.rand(b, n, generator=gen) > 0.3).float() / 0.7).to(device) if masked else None
    g_out = torch.randn(b, n * d, *hw, generator=gen).to(device, dtype)
    g_energy = torch.randn(b, n, generator=gen).to(device)
    got = run_op(h, w, keep, n, g_out, g_energy, which, kernels=True)
    want = run_op(h, w, keep, n, g_out, g_energy, which, kernels=False)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    for name, a, r in zip(('output', 'energies', 'dL/dh', 'dL/dW'), got, want):
        assert a.dtype == r.dtype and a.shape == r.shape, (name, a.dtype, r.dtype, a.shape, r.shape)
        err = float((a.double() - r.double()).norm() / r.double().norm().clamp_min(1e-30))
        assert err < tol, f'{name} differs by {err:.2e} (tolerance {tol}) in case {(b, n, d, hw, channels_last, dtype, masked, which)}'
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    assert got[2].is_contiguous(memory_format=memory_format), 'dL/dh lost the memory format of h'


def main(device: str) -> None:
    for case in CASES:
        compare_paths(device, *case)
    print(f'{len(CASES)} cases match on {device}')


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else 'cpu')
