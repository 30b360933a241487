""" Coding loss (Eq. 5-6) and early decoders (§4.4), for any model whose blocks follow the coded-block interface.

Each coded block keeps the normalised energies E(t̄_n) of its last forward pass (`subnn_energies`, (B, N)); these
functions pair them with the block's codebook w_l (its `coding_key` in the model's `Codebooks`), so `forward(x)`
never changes:

* Eq. 5: L_code,l = 1/N sum_n (r_l E(t̄_n) - (w_{l,k})_n)^4, averaged over the batch -> `block_coding_losses`.
* Eq. 6: L_tot = L_class + mu * sum_l L_code,l -> `coding_loss` gives the sum; the caller adds mu * it.
* §4.4: block l predicts argmin_k ||r_l E(t̄) - w_{l,k}||_2 -> `early_decoder_scores`.

Soft targets (B, K) from Mixup/CutMix or label smoothing use the probability-weighted codeword y @ W_l.
Nothing here synchronises with the host on CUDA or XLA.
"""
import os
from typing import Dict, List, NamedTuple, Optional

import torch
import torch.nn as nn

from .layers import get_codebooks, named_coded_blocks, unwrap

__all__ = ['CodedState', 'coded_state', 'coding_loss', 'block_coding_losses', 'early_decoder_scores', 'early_decode',
           'check_class_indices', 'resolve_mu', 'CODING_LOSS_POWER', 'MU_ENV']

CODING_LOSS_POWER = 4  # §3.1.2: 4 beats 2 and |.| on CIFAR-10/100
MU_ENV = 'TIMM_CODED_MU'


class CodedState(NamedTuple):
    """The coded blocks of a model (depth order) with their last energies, codebooks and ratios."""
    names: List[str]
    energies: List[torch.Tensor]  # (B, N) fp32 each
    codebooks: List[torch.Tensor]  # (K, N) fp32 each
    ratios: List[float]
    keys: List[str]  # coding scheme of each block: blocks with one key share codebook and ratio


def coded_state(model: nn.Module, consume: bool = False) -> CodedState:
    """Energies of the last forward pass of every coded block (model possibly wrapped), with their codebooks.
    `consume` clears them, so a second loss without a new forward pass is an error."""
    blocks = named_coded_blocks(model)
    if not blocks:
        raise ValueError(
            f'{type(unwrap(model)).__name__} has no coded blocks (every coding ratio is N/N): there is no coding loss. '
            f'Build it with a ratio < 1 in some stage, e.g. coding_ratios=("10/10", "5/10", "3/10").')
    books = get_codebooks(model)
    energies = []
    for name, block in blocks:
        if block.subnn_energies is None:
            raise RuntimeError(f'Coded block {name} holds no energies: run a forward pass of the model before the '
                               f'coding loss (each forward pass serves one loss).')
        energies.append(block.subnn_energies)
        if consume:
            block.subnn_energies = None
    codebooks = {key: books.get(key) for key in {b.coding_key for _, b in blocks}}
    return CodedState(names=[n for n, _ in blocks], energies=energies,
                      codebooks=[codebooks[b.coding_key] for _, b in blocks],
                      ratios=[b.coding_ratio for _, b in blocks], keys=[b.coding_key for _, b in blocks])


def check_class_indices(target: torch.Tensor, num_classes: int) -> None:
    """A clear error for class indices outside 0..K-1 without stalling an accelerator: a ValueError on CPU, an
    asynchronous device assertion on CUDA (surfacing at the next sync), no check elsewhere (it would sync)."""
    if target.device.type not in ('cpu', 'cuda') or target.is_floating_point():
        return
    bad = ((target < 0) | (target >= num_classes)).any()
    message = (f'Class index out of range: the codebook has {num_classes} classes (0..{num_classes - 1}). '
               f'Check num_classes of the model and the dataset.')
    if target.device.type == 'cpu':
        if bool(bad):
            raise ValueError(f'{message} Targets span {int(target.min())}..{int(target.max())}.')
    else:
        torch._assert_async(~bad, message)


def block_coding_losses(state: CodedState, target: torch.Tensor, power: int = CODING_LOSS_POWER) -> torch.Tensor:
    """(L,) coding loss of each coded block (Eq. 5), each averaged over the batch; the blocks sharing a coding
    scheme are computed together (a handful of kernels per scheme)."""
    groups: Dict[str, List[int]] = {}
    for i, energy in enumerate(state.energies):
        if energy.shape[0] != target.shape[0]:
            raise ValueError(f'Batch of targets ({target.shape[0]}) differs from the last forward pass '
                             f'({energy.shape[0]}).')
        groups.setdefault(state.keys[i], []).append(i)
    num_classes = state.codebooks[0].shape[0]
    soft = target.dim() == 2 and target.is_floating_point()
    if soft and target.shape[1] != num_classes:
        raise ValueError(f'Soft targets have {target.shape[1]} classes but the codebook has {num_classes} '
                         f'codewords: the target width must equal the model\'s num_classes.')
    if not soft and (target.dim() != 1 or target.is_floating_point()):
        raise ValueError(f'Targets must be class indices (B,) or soft targets (B, {num_classes}); got '
                         f'{tuple(target.shape)} {target.dtype}.')
    device = state.energies[0].device
    target = target.to(device)
    check_class_indices(target, num_classes)
    losses, order = [], []
    for idx in groups.values():
        book = state.codebooks[idx[0]].to(device)
        word = target.float() @ book if soft else book.index_select(0, target.long())  # (B, N): y @ W_l or w_{l,k}
        energy = torch.stack([state.energies[i] for i in idx])  # (L_g, B, N)
        losses.append((state.ratios[idx[0]] * energy - word).pow(power).mean(dim=(1, 2)))  # Eq. 5
        order += idx
    losses = torch.cat(losses)
    return losses if order == sorted(order) else losses[torch.tensor(order).argsort().to(device)]


def coding_loss(model: nn.Module, target: torch.Tensor, per_block: bool = False, consume: bool = True) -> torch.Tensor:
    """sum_l L_code,l of the model's last forward pass, unweighted: `loss = criterion(out, y) + mu * coding_loss(...)`.

    Accepts DDP-wrapped and compiled models; targets are class indices (B,) or soft targets (B, K). `per_block`
    returns the (L,) per-block losses instead; `consume` forgets the energies, so a loss without a new forward raises.
    """
    losses = block_coding_losses(coded_state(model, consume=consume), target)
    return losses if per_block else losses.sum()


def resolve_mu(model: nn.Module, mu: Optional[float] = None) -> float:
    """mu of Eq. 6: `mu`, else $TIMM_CODED_MU, else the model's `coding_loss_weight` (6 CIFAR nets, 2 ImageNet)."""
    if mu is None and os.environ.get(MU_ENV):
        try:
            mu = float(os.environ[MU_ENV])
        except ValueError:
            raise ValueError(f'{MU_ENV}={os.environ[MU_ENV]!r} is not a number: set it to mu, e.g. {MU_ENV}=2.')
    mu = float(getattr(unwrap(model), 'coding_loss_weight', 1.) if mu is None else mu)
    if mu < 0:
        raise ValueError(f'The coding loss weight mu must be >= 0, got {mu}.')
    return mu


def early_decoder_scores(energy: torch.Tensor, codebook: torch.Tensor, ratio: float) -> torch.Tensor:
    """(B, K) scores -||r E(t̄) - w_k||_2 of one early decoder (§4.4): argmax = nearest codeword."""
    return -torch.cdist(ratio * energy.float(), codebook.float().to(energy.device))


def early_decode(model: nn.Module, x: Optional[torch.Tensor] = None) -> List[torch.Tensor]:
    """One (B, K) early-decoder score tensor per coded block, in depth order: of `model(x)` (run without grad) when
    `x` is given, else of the last forward pass."""
    if x is not None:
        with torch.no_grad():
            model(x)
    state = coded_state(model)
    return [early_decoder_scores(e.detach(), c, r) for e, c, r in zip(state.energies, state.codebooks, state.ratios)]
