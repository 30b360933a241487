""" Early decoders (§4.4): per-block accuracy, Table 3 agreement, and early-exit inference.

Every coded block l predicts argmin_k ||r_l E(t̄) - w_{l,k}||_2 from its normalised subNN energies
(`timm_coded.early_decode`); `EarlyExit` computes nothing after block l's energies (not even its expand conv).
"""
from typing import Dict, List, Union

import torch
import torch.nn as nn

from ..layers import get_codebooks, subnn_energies, unwrap
from ..loss import early_decoder_scores
from ..models import CodedBottleneck
from .subnns import coded_blocks, residual_blocks

__all__ = ['EarlyExit', 'block_energies', 'decoder_accuracy', 'agreement_table']


def block_energies(block: CodedBottleneck, x: torch.Tensor) -> torch.Tensor:
    """Normalised energies E(t̄_n) (B, N) of a coded block's subNNs (eval mode), without its expand conv."""
    x = block.act1(block.bn1(block.conv1(x)))
    x = block.aa(block.act2(block.drop_block(block.bn2(block.conv2(x)))))
    energy = subnn_energies(x, block.conv3.weight, block.num_subnns)
    return energy / (energy.mean(dim=1, keepdim=True) + block.energy_eps)


class EarlyExit(nn.Module):
    """A Coded ResNeXt cut after one coded block: (B, C, H, W) -> (B, K) scores of that block's early decoder.

    `block` is an index into the coded blocks (negative counts from the end) or a name such as 'layer3.0'. The
    modules (and weights) are the model's own.
    """

    def __init__(self, model: nn.Module, block: Union[int, str]):
        super().__init__()
        net = unwrap(model)
        names = [n for n, _ in coded_blocks(net)]
        if isinstance(block, str) and block not in names:
            raise ValueError(f'{block!r} is not a coded block; coded blocks are {names}.')
        if not isinstance(block, str) and not -len(names) <= block < len(names):
            raise ValueError(f'Early-exit block index {block} out of range: the model has {len(names)} coded '
                             f'blocks {names}.')
        self.decoder_index = names.index(block) if isinstance(block, str) else block % len(names)
        self.block_name = names[self.decoder_index]
        self.stem = nn.Sequential(net.conv1, net.bn1, net.act1, net.maxpool)
        blocks = dict(residual_blocks(net))
        self.blocks = nn.Sequential(*list(blocks.values())[:list(blocks).index(self.block_name)])
        self.exit_block = blocks[self.block_name]
        self.ratio = float(self.exit_block.coding_ratio)
        self.register_buffer('codebook', get_codebooks(net).get(self.exit_block.coding_key).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return early_decoder_scores(block_energies(self.exit_block, x), self.codebook, self.ratio)


def decoder_accuracy(decoder_preds: torch.Tensor, target: torch.Tensor) -> List[float]:
    """Accuracy of each early decoder; `decoder_preds` is (L, M) predicted classes, `target` (M,)."""
    return (decoder_preds == target.unsqueeze(0)).float().mean(dim=1).tolist()


def agreement_table(decoder_preds: torch.Tensor, final_pred: torch.Tensor, target: torch.Tensor) -> List[Dict]:
    """Table 3: accuracy of the final prediction given how many early decoders (0..L) agree with it."""
    agree = (decoder_preds == final_pred.unsqueeze(0)).sum(dim=0)
    correct = final_pred == target
    rows = []
    for c in range(decoder_preds.shape[0] + 1):
        sel = agree == c
        n = int(sel.sum())
        rows.append({'agree': c, 'count': n, 'accuracy': float(correct[sel].float().mean()) if n else None})
    return rows
