""" Coding loss (Eq. 5-6) and early decoders (§4.4) of Coded ResNeXt.

Each coded block keeps the normalised energies E(t̄_n) of its last forward pass (`subnn_energies`, (B, N));
these functions pair them with the block's codebook, so `forward(x)` never changes:

* Eq. 5: L_code,l = 1/N sum_n (r_l E(t̄_n) - (w_{l,k})_n)^4, averaged over the batch -> `block_coding_losses`.
* Eq. 6: L_tot = L_class + mu * sum_l L_code,l -> `coding_loss` gives the sum; the caller adds mu * it.
* §4.4: early decoder of block l predicts argmin_k ||r_l E(t̄) - w_{l,k}||_2 -> `early_decoder_scores`.

Soft targets (B, K) from Mixup/CutMix or label smoothing use the probability-weighted codeword y @ W_l.
Nothing here synchronises with the host on XLA.
"""
from typing import Any, Dict, List, NamedTuple, Optional

import torch
import torch.nn as nn

from .coded_resnext import CodedResNeXt

__all__ = ['CodedState', 'coded_state', 'coding_loss', 'block_coding_losses', 'early_decoder_scores',
           'early_decode', 'target_codewords', 'check_class_indices', 'unwrap_coded', 'CODING_LOSS_POWER']

CODING_LOSS_POWER = 4  # §3.1.2: 4 beats 2 and |.| on CIFAR-10/100


class CodedState(NamedTuple):
    """The coded blocks of a model (depth order) with their last energies, codebooks and ratios."""
    names: List[str]
    energies: List[torch.Tensor]  # (B, N) fp32 each
    codebooks: List[torch.Tensor]  # (K, N) fp32 each
    ratios: List[float]
    keys: Optional[List[str]] = None  # coding scheme of each block: blocks with one key share codebook and ratio


def unwrap_coded(model: nn.Module) -> CodedResNeXt:
    """The CodedResNeXt inside DDP / DataParallel / torch.compile / EMA / ClassificationTask wrappers."""
    seen = 0
    while not isinstance(model, CodedResNeXt) and seen < 8:
        seen += 1
        for attr in ('_orig_mod', 'module', 'trainable_module'):
            inner = getattr(model, attr, None)
            if isinstance(inner, nn.Module):
                model = inner
                break
        else:
            break
    if not isinstance(model, CodedResNeXt):
        raise ValueError(
            f'{type(model).__name__} is not a Coded ResNeXt (nor a DDP / compiled / EMA wrapper of one): the '
            f'coding loss needs a model from timm_coded, e.g. timm.create_model("coded_resnext29_10x11d").')
    return model


def coded_state(model: nn.Module, consume: bool = False) -> CodedState:
    """Energies of the last forward pass of every coded block, with the matching codebooks.

    Args:
        model: A CodedResNeXt, possibly wrapped.
        consume: Clear the stashed energies, so a second loss without a new forward pass is an error.
    """
    net = unwrap_coded(model)
    blocks = net.named_coded_blocks()
    if not blocks:
        raise ValueError(
            f'{type(net).__name__} has no coded blocks (every coding ratio is N/N, {net.coding_ratios}): there is '
            f'no coding loss. Build it with a ratio < 1 in some stage, e.g. coding_ratios=("10/10", "5/10", "3/10").')
    energies = []
    for name, block in blocks:
        if block.subnn_energies is None:
            raise RuntimeError(
                f'Coded block {name} holds no energies: run a forward pass of the model before asking for the '
                f'coding loss (each forward pass serves one loss).')
        energies.append(block.subnn_energies)
        if consume:
            block.subnn_energies = None
    codebooks = {key: net.get_codebook(key) for key in {b.coding_key for _, b in blocks}}
    return CodedState(
        names=[n for n, _ in blocks],
        energies=energies,
        codebooks=[codebooks[b.coding_key] for _, b in blocks],
        ratios=[b.coding_ratio for _, b in blocks],
        keys=[b.coding_key for _, b in blocks],
    )


def target_codewords(target: torch.Tensor, codebook: torch.Tensor, validate: Optional[bool] = None) -> torch.Tensor:
    """Target codeword per sample, (B, N): w_{l,k} for class indices, y @ W_l for soft targets (B, K).

    Args:
        validate: Check class indices are in range (`check_class_indices`); default on, except on XLA.
    """
    num_classes = codebook.shape[0]
    if target.dim() == 2 and target.is_floating_point():
        if target.shape[1] != num_classes:
            raise ValueError(
                f'Soft targets have {target.shape[1]} classes but the codebook has {num_classes} codewords: '
                f'the target width must equal the model\'s num_classes.')
        return target.float() @ codebook
    if target.dim() != 1 or target.is_floating_point():
        raise ValueError(
            f'Targets must be class indices (B,) or soft targets (B, {num_classes}); got {tuple(target.shape)} '
            f'{target.dtype}.')
    check_class_indices(target, num_classes, validate)
    return codebook.index_select(0, target.long())


def check_class_indices(target: torch.Tensor, num_classes: int, validate: Optional[bool] = None) -> None:
    """Raise a clear error for class indices outside 0..K-1, without stalling an accelerator.

    CPU: a ValueError at once. CUDA: an asynchronous device assertion carrying the same message (no host sync;
    it surfaces at the next synchronisation). XLA: off by default, as any check there would sync.
    """
    if validate is None:
        validate = target.device.type in ('cpu', 'cuda')
    if not validate or target.dim() != 1 or target.is_floating_point() or not target.numel():
        return
    bad = ((target < 0) | (target >= num_classes)).any()
    message = (f'Class index out of range: the codebook has {num_classes} classes (0..{num_classes - 1}). '
               f'Check num_classes of the model and the dataset.')
    if target.device.type == 'cpu':
        if bool(bad):
            raise ValueError(f'{message} Targets span {int(target.min())}..{int(target.max())}.')
    else:
        torch._assert_async(~bad, message)


def block_coding_losses(
        state: CodedState,
        target: torch.Tensor,
        power: int = CODING_LOSS_POWER,
        validate: Optional[bool] = None,
) -> torch.Tensor:
    """(L,) coding loss of each coded block, Eq. 5, each averaged over the batch.

    Blocks sharing a codebook (one coding scheme) are computed together: a handful of kernels per scheme.
    """
    groups: Dict[Any, List[int]] = {}  # coding scheme -> its blocks (one block per group without keys)
    for i, energy in enumerate(state.energies):
        if energy.shape[0] != target.shape[0]:
            raise ValueError(
                f'Batch of targets ({target.shape[0]}) differs from the last forward pass ({energy.shape[0]}).')
        groups.setdefault(state.keys[i] if state.keys is not None else i, []).append(i)
    device = state.energies[0].device
    target = target.to(device)
    check_class_indices(target, state.codebooks[0].shape[0], validate)
    losses: List[torch.Tensor] = []
    order: List[int] = []
    for idx in groups.values():
        word = target_codewords(target, state.codebooks[idx[0]].to(device), validate=False)  # (B, N)
        energy = torch.stack([state.energies[i] for i in idx])  # (L_g, B, N)
        losses.append((state.ratios[idx[0]] * energy - word).pow(power).mean(dim=(1, 2)))
        order += idx
    losses = torch.cat(losses)
    return losses if order == sorted(order) else losses[torch.tensor(order).argsort().to(device)]


def coding_loss(
        model: nn.Module,
        target: torch.Tensor,
        per_block: bool = False,
        consume: bool = True,
) -> torch.Tensor:
    """Sum over coded blocks of the coding loss (Eq. 5) of the model's last forward pass, unweighted.

    Use as `loss = criterion(out, y) + mu * coding_loss(model, y)` (Eq. 6). Accepts DDP-wrapped and
    compiled models; targets are class indices (B,) or soft targets (B, K).

    Args:
        per_block: Return the (L,) per-block losses instead of their sum.
        consume: Forget the energies afterwards, so a loss without a new forward pass raises.
    """
    losses = block_coding_losses(coded_state(model, consume=consume), target)
    return losses if per_block else losses.sum()


def early_decoder_scores(energy: torch.Tensor, codebook: torch.Tensor, ratio: float) -> torch.Tensor:
    """(B, K) scores -||r E(t̄) - w_k||_2 of one early decoder (§4.4): argmax = nearest codeword."""
    return -torch.cdist(ratio * energy.float(), codebook.float().to(energy.device))


def early_decode(model: nn.Module, x: Optional[torch.Tensor] = None) -> List[torch.Tensor]:
    """One (B, K) early-decoder score tensor per coded block, in depth order.

    Runs `model(x)` (no grad) when `x` is given, else decodes the energies of the last forward pass.
    """
    if x is not None:
        with torch.no_grad():
            model(x)
    state = coded_state(model)
    return [early_decoder_scores(e.detach(), c, r) for e, c, r in zip(state.energies, state.codebooks, state.ratios)]
