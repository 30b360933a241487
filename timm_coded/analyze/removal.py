""" SubNN removal (§4.2, Fig. 2a and Fig. 9): accuracy when k random active vs k random inactive subNNs of one
block are removed, given each sample's class.

Each sample gets one random order of its class's active subNNs and one of its inactive ones; removing k takes the
first k, so the curves are nested. Each removal reruns only the block and what follows it.
"""
from typing import Dict, Iterable, List, Optional, Tuple

import torch
import torch.nn as nn

from ..layers import get_codebooks, unwrap
from .subnns import coded_blocks, remove_subnns, residual_blocks

__all__ = ['removal_masks', 'removal_curves']


def removal_masks(codewords: torch.Tensor, k: int, active: bool, noise: torch.Tensor) -> torch.Tensor:
    """(B, N) keep-masks removing, per sample, the k subNNs of its active (codeword 1) or inactive set with the
    smallest `noise` (B, N) (uniform in [0, 1)): one noise draw gives nested removals for k = 0, 1, ..."""
    pool = codewords > 0.5 if active else codewords < 0.5
    if k > int(pool.sum(dim=1).min()):
        raise ValueError(f'Cannot remove {k} {"active" if active else "inactive"} subNNs: some codewords have only '
                         f'{int(pool.sum(dim=1).min())}.')
    noise = noise.to(codewords.device).masked_fill(~pool, 2.)  # never pick outside the pool
    return torch.ones_like(codewords, dtype=torch.float32).scatter_(1, noise.argsort(dim=1)[:, :k], 0.)


@torch.no_grad()
def removal_curves(
        model: nn.Module,
        batches: Iterable[Tuple[torch.Tensor, torch.Tensor]],
        blocks: Optional[List[str]] = None,
        device: torch.device = torch.device('cpu'),
        seed: int = 0,
) -> List[Dict]:
    """Accuracy vs k for removing k active and k inactive subNNs, one dict per coded block in `blocks` (default
    all), over the (images, targets) `batches` of a validation set; `model` in eval mode."""
    net = unwrap(model)
    items = dict(coded_blocks(net))
    blocks = list(items) if blocks is None else blocks
    for name in blocks:
        if name not in items:
            raise ValueError(f'{name!r} is not a coded block; coded blocks are {list(items)}.')
    books = get_codebooks(net)
    gen = torch.Generator().manual_seed(seed)
    names, sequence = zip(*residual_blocks(net))
    stem = (net.conv1, net.bn1, net.act1, net.maxpool)
    parts = {n: (nn.Sequential(*stem, *sequence[:names.index(n)]), nn.Sequential(*sequence[names.index(n):]))
             for n in blocks}  # up to block n (run once for all k), and from it on
    ks = {n: {'active': list(range(items[n].num_active + 1)),  # k = 0 is shared
              'inactive': list(range(1, items[n].num_subnns - items[n].num_active + 1))} for n in blocks}
    correct = {n: {mode: [0] * len(k) for mode, k in modes.items()} for n, modes in ks.items()}
    total = 0
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        total += y.numel()
        for name in blocks:
            head, tail = parts[name]
            h = head(x)
            words = books.get(items[name].coding_key).to(device).index_select(0, y)
            for mode, mode_ks in ks[name].items():
                noise = torch.rand(words.shape, generator=gen)
                for i, k in enumerate(mode_ks):
                    with remove_subnns(net, {name: removal_masks(words, k, mode == 'active', noise)}):
                        pred = net.forward_head(tail(h)).argmax(dim=1)
                    correct[name][mode][i] += int((pred == y).sum())
    acc = lambda counts: [c / max(total, 1) for c in counts]  # noqa: E731
    return [{'block': n, 'num_subnns': items[n].num_subnns, 'num_active': items[n].num_active,
             'k_active': ks[n]['active'], 'accuracy_active': acc(correct[n]['active']),
             'k_inactive': [0] + ks[n]['inactive'],
             'accuracy_inactive': acc(correct[n]['active'][:1] + correct[n]['inactive']), 'samples': total}
            for n in blocks]
