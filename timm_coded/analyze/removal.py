""" SubNN removal (§4.2, Fig. 2a and Fig. 9): accuracy when k random active vs k random inactive subNNs of one
block are removed, given each sample's class.

Each sample gets one random order of its class's active subNNs and one of its inactive ones; removing k
takes the first k of that order, so the curves are nested (the k+1 removal contains the k removal). The input
of the block is computed once per batch; each removal reruns only the block and what follows it.
"""
from typing import Dict, Iterable, List, Optional, Tuple

import torch
import torch.nn as nn

from ..layers import get_codebooks, unwrap
from .subnns import coded_blocks, forward_stem, remove_subnns, residual_blocks

__all__ = ['removal_masks', 'removal_curves']


def removal_masks(codewords: torch.Tensor, k: int, active: bool, noise: torch.Tensor) -> torch.Tensor:
    """(B, N) keep-masks removing k subNNs per sample from its active (codeword 1) or inactive set.

    The k removed are those with the smallest `noise` (B, N) (uniform in [0, 1)) within the set, so one noise
    draw gives nested removals for k = 0, 1, ...
    """
    pool = codewords > 0.5 if active else codewords < 0.5
    if k > int(pool.sum(dim=1).min()):
        raise ValueError(f'Cannot remove {k} {"active" if active else "inactive"} subNNs: some codewords have only '
                         f'{int(pool.sum(dim=1).min())}.')
    noise = noise.to(codewords.device).masked_fill(~pool, 2.)  # never pick outside the pool
    order = noise.argsort(dim=1)
    keep = torch.ones_like(codewords, dtype=torch.float32)
    keep.scatter_(1, order[:, :k], 0.)
    return keep


@torch.no_grad()
def removal_curves(
        model: nn.Module,
        batches: Iterable[Tuple[torch.Tensor, torch.Tensor]],
        blocks: Optional[List[str]] = None,
        device: torch.device = torch.device('cpu'),
        seed: int = 0,
) -> List[Dict]:
    """Accuracy vs k for removing k active and k inactive subNNs, one dict per block.

    Args:
        model: A trained Coded ResNeXt, in eval mode.
        batches: (images, targets) batches of a validation set.
        blocks: Coded block names (default all coded blocks).
    """
    net = unwrap(model)
    items = dict(coded_blocks(net))
    books = get_codebooks(net)
    blocks = list(items) if blocks is None else blocks
    for name in blocks:
        if name not in items:
            raise ValueError(f'{name!r} is not a coded block; coded blocks are {list(items)}.')
    gen = torch.Generator().manual_seed(seed)
    plans = {n: {'active': list(range(items[n].num_active + 1)),  # k = 0 is shared
                 'inactive': list(range(1, items[n].num_subnns - items[n].num_active + 1))} for n in blocks}
    correct = {(n, mode, k): 0 for n, p in plans.items() for mode, ks in p.items() for k in ks}
    sequence = residual_blocks(net)
    start = {name: [n for n, _ in sequence].index(name) for name in blocks}
    total = 0
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        total += y.numel()
        for name in blocks:
            h = forward_stem(net, x)
            for _, block in sequence[:start[name]]:
                h = block(h)
            words = books.get(items[name].coding_key).to(device).index_select(0, y)
            for mode, ks in plans[name].items():
                noise = torch.rand(words.shape, generator=gen)
                for k in ks:
                    keep = removal_masks(words, k, mode == 'active', noise)
                    with remove_subnns(net, {name: keep}):
                        out = h
                        for _, block in sequence[start[name]:]:
                            out = block(out)
                        pred = net.forward_head(out).argmax(dim=1)
                    correct[(name, mode, k)] += int((pred == y).sum())
    out = []
    for name in blocks:
        active_acc = [correct[(name, 'active', k)] / max(total, 1) for k in plans[name]['active']]
        inactive_acc = [active_acc[0]] + [correct[(name, 'inactive', k)] / max(total, 1)
                                          for k in plans[name]['inactive']]
        out.append({'block': name, 'num_subnns': items[name].num_subnns, 'num_active': items[name].num_active,
                    'k_active': plans[name]['active'], 'accuracy_active': active_acc,
                    'k_inactive': [0] + plans[name]['inactive'], 'accuracy_inactive': inactive_acc, 'samples': total})
    return out
