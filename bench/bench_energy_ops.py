"""The coded op's pieces at coded_resnext50_32x4d's block shapes, each beside candidate replacements.

A development tool for the train-step time target (nothing is written to BENCHMARKS.md). For the stage-3 and
stage-4 blocks (`STAGES`) it times every piece of `SubNNCoding`'s forward and backward as the model runs it
("model"), and each candidate formulation beside it, after checking that the candidate gives the same tensor.
Calls are interleaved; a sample is `--inner` back-to-back calls and one device synchronisation, so a figure is the
cost per call in a stream of calls (device time where the GPU is busy, host time where it is not).

    python bench/bench_energy_ops.py [--device cuda] [--batches 8,256] [--repeats 21] [--inner 20]
"""
import argparse
from typing import Callable, Dict, List, Tuple

import torch

from timm_coded.layers.subnn_coding import _energy_grad_w, _energy_scale, _group_view, _scale_groups, _weight_groups

from common import machine_info, median, time_interleaved_samples

STAGES = {'stage 3': (1024, 32, 16, 10), 'stage 4': (2048, 32, 32, 5)}  # C, N, d, H = W at 160 px


def gram_contiguous(weight: torch.Tensor, n: int) -> torch.Tensor:
    """G_n from a contiguous (N, C, d) copy of the W_n."""
    wg = _weight_groups(weight, n).contiguous()
    return torch.bmm(wg.transpose(1, 2), wg)


def gram_split_k(weight: torch.Tensor, n: int, chunks: int = 16) -> torch.Tensor:
    """G_n as the sum of `chunks` partial Grams over slices of C: N * chunks short products instead of N long."""
    c = weight.shape[0]
    wk = weight.reshape(chunks, c // chunks, n, -1).permute(2, 0, 1, 3)  # (N, chunks, C / chunks, d)
    return torch.matmul(wk.transpose(-1, -2), wk).sum(dim=1)


def energy_bmm(s: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """E_bn = <G_n, S_bn> as one batched product over n, (N, B, d*d) x (N, d*d, 1), without an S-sized temporary."""
    b, n, d, _ = s.shape
    return torch.bmm(s.view(b, n, d * d).transpose(0, 1), g.reshape(n, d * d, 1)).view(n, b).t()


def dot_bmm(go: torch.Tensor, hv: torch.Tensor) -> torch.Tensor:
    """a_bn as B*N dot products in one bmm, (B*N, 1, K) x (B*N, K, 1), without an h-sized temporary."""
    b, n = hv.shape[:2]
    return torch.bmm(go.reshape(b * n, 1, -1), hv.reshape(b * n, -1, 1)).view(b, n)


def grad_w_previous(weight: torch.Tensor, s: torch.Tensor, coef: torch.Tensor, scale: float) -> torch.Tensor:
    """dL/dW before 356ebc2: S-sized product and sum, then bmm and a weight-sized transpose copy."""
    s_bar = (s * coef[:, :, None, None]).sum(dim=0).mul_(scale)
    grad = torch.bmm(_weight_groups(weight, s.shape[1]), s_bar)
    return grad.transpose(0, 1).reshape(weight.shape)


def cases(batch: int, stage: Tuple[int, int, int, int], device: torch.device) -> List[Tuple[str, Dict[str, Callable]]]:
    """(piece, {variant: fn}) with the model's variant first; inputs random, shaped as in the block."""
    c, n, d, hw = stage
    torch.manual_seed(0)
    h = torch.randn(batch, n * d, hw, hw, device=device).relu_()
    weight = torch.randn(c, n * d, 1, 1, device=device) / (n * d) ** 0.5
    go = torch.randn_like(h)
    hv, gov = _group_view(h, n), _group_view(go, n)
    scale = _energy_scale(h, weight)
    wg = _weight_groups(weight, n)
    s = torch.matmul(hv, hv.transpose(-1, -2))
    g = torch.bmm(wg.transpose(1, 2), wg).mul_(scale)
    coef = torch.randn(batch, n, device=device)
    gain = torch.rand(batch, n, device=device)
    buf = torch.empty_like(hv)

    def dh_model():
        return torch.matmul(g * coef[:, :, None, None], hv, out=buf).addcmul_(gov, gain[:, :, None, None])
    return [
        ('S_bn = h_n h_n^T (forward)', {'model': lambda: torch.matmul(hv, hv.transpose(-1, -2))}),
        ('G_n = W_n^T W_n (forward)', {'model': lambda: torch.bmm(wg.transpose(1, 2), wg),
                                       'contiguous W_n': lambda: gram_contiguous(weight, n),
                                       'split-K x16': lambda: gram_split_k(weight, n)}),
        ('E_bn = <G_n, S_bn> (forward)', {'model': lambda: (s * g).sum(dim=(-1, -2)), 'bmm': lambda: energy_bmm(s, g)}),
        ('gain * h (forward)', {'model': lambda: _scale_groups(h, gain)}),
        # the model's a_bn: an elementwise product (its buffer reused for dL/dh) and a sum
        ('a_bn = <dout_bn, h_bn> (backward)', {'model': lambda: (gov * hv).sum(dim=(-1, -2)),
                                               'bmm': lambda: dot_bmm(gov, hv)}),
        ('dL/dh = coef G h + gain dout (backward)', {'model': dh_model}),
        ('dL/dW = W_n S̄_n (backward)', {'model': lambda: _energy_grad_w(weight, s, coef, scale),
                                        'before 356ebc2': lambda: grad_w_previous(weight, s, coef, scale)}),
    ]


def check_equal(variants: Dict[str, Callable]) -> None:
    """Every candidate gives the model's tensor (fp32 tolerances)."""
    ref = variants['model']()
    for name, fn in variants.items():
        torch.testing.assert_close(fn(), ref, rtol=1e-4, atol=1e-4, msg=lambda m: f'{name}: {m}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--batches', default=None, help='default 8,256 on CUDA, 8,32 on CPU')
    parser.add_argument('--repeats', type=int, default=21)
    parser.add_argument('--inner', type=int, default=None, help='calls per sample (default 20 on CUDA, 3 on CPU)')
    args = parser.parse_args()
    device = torch.device(args.device)
    cuda = device.type == 'cuda'
    inner = args.inner or (20 if cuda else 3)
    batches = [int(b) for b in (args.batches or ('8,256' if cuda else '8,32')).split(',') if b]
    print(f'{machine_info()}; device {device}, {inner} calls per sample, median of {args.repeats} samples')

    def stream(fn: Callable) -> Callable[[], None]:
        def run():
            for _ in range(inner):
                fn()
        return run
    for batch in batches:
        for stage_name, stage in STAGES.items():
            print(f'\n== batch {batch}, {stage_name} (C, N, d, H=W = {stage}) ==')
            total = 0.
            for piece, variants in cases(batch, stage, device):
                check_equal(variants)
                samples = time_interleaved_samples({k: stream(f) for k, f in variants.items()}, args.repeats,
                                                   device=device)
                us = {k: median(v) / inner * 1e6 for k, v in samples.items()}
                total += us['model']
                alts = ''.join(f'; {k} {t:.1f} us ({t / us["model"]:.2f}x)' for k, t in us.items() if k != 'model')
                print(f'{piece:42s} model {us["model"]:9.1f} us{alts}')
            print(f'{"sum of the model pieces":42s} {total:9.1f} us')


if __name__ == '__main__':
    main()
