"""Worker for tests/test_hook.py: coding loss + grads under DDP (gloo, CPU), launched by torchrun.

Each rank takes its half of a fixed batch; rank 0 writes the all-reduced mean loss and the DDP-averaged
gradients of the coded blocks to the file given as argv[1].
"""
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

import timm_coded

from helpers.models import make_tiny


def build():
    return make_tiny(channels=(8, 16, 32), cardinality=6, coding_ratios=('6/6', '3/6', '2/6'), num_classes=6,
                     drop_subnn_rate=0.)


def batch():
    g = torch.Generator().manual_seed(1)
    return torch.randn(8, 3, 16, 16, generator=g), torch.arange(8) % 6


def total_loss(model, x, y):
    """Eq. 6 with mu = 2: cross-entropy + mu * coding loss."""
    out = model(x)
    return torch.nn.functional.cross_entropy(out, y) + 2. * timm_coded.coding_loss(model, y)


def main(out_path: str) -> None:
    dist.init_process_group('gloo')
    rank, world = dist.get_rank(), dist.get_world_size()
    model = DDP(build().eval())  # eval: BN uses running stats, so shards and the full batch agree
    x, y = batch()
    xs, ys = x.chunk(world)[rank], y.chunk(world)[rank]
    loss = total_loss(model, xs, ys)
    loss.backward()
    mean_loss = loss.detach().clone()
    dist.all_reduce(mean_loss)
    mean_loss /= world
    if rank == 0:
        grads = {n: p.grad.clone() for n, p in model.module.named_parameters() if p.grad is not None}
        torch.save({'loss': mean_loss, 'grads': grads}, out_path)
    dist.destroy_process_group()


if __name__ == '__main__':
    main(sys.argv[1])
