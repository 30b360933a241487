""" Coding ratios r = N_act / N (Eq. 4) and the codebooks of a coded model (§3.2.1), one per ratio.

A ratio is written 'N_act/N' ('3/10'); the codebook of ratio 3/10 is the state_dict buffer `codebooks.r3_10`.
`ratio_key` and `parse_ratio` are the only places that convert between the two spellings.
"""
import warnings
from fractions import Fraction
from typing import TYPE_CHECKING, List, Mapping, Sequence, Tuple, Union

import torch
import torch.nn as nn

if TYPE_CHECKING:
    from ..codes import CodingScheme

__all__ = ['RatioSpec', 'parse_coding_ratio', 'parse_coding_ratios', 'ratio_key', 'parse_ratio', 'Codebooks']

RatioSpec = Union[str, int, float, Fraction]


def ratio_key(num_active: int, num_subnns: int) -> str:
    """Buffer name of the codebook of ratio N_act/N: 'r3_10'."""
    return f'r{num_active}_{num_subnns}'


def parse_ratio(text: str) -> Tuple[int, int]:
    """(N_act, N) from '3/10' or 'r3_10'; ValueError naming the expected form otherwise."""
    body = text.strip()
    body = body[1:].replace('_', '/') if body.startswith('r') else body
    parts = body.split('/')
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"Unknown coding ratio {text!r}: write it as 'N_act/N', e.g. '3/10'.")
    return int(parts[0]), int(parts[1])


def parse_coding_ratio(ratio: RatioSpec, num_subnns: int) -> int:
    """N_act of one stage's ratio r = N_act / N (Eq. 4): 'A/N' ('3/10'), an int N_act, or a float / Fraction r."""
    n = num_subnns
    if isinstance(ratio, bool) or not isinstance(ratio, (str, int, float, Fraction)):
        raise ValueError(f'A coding ratio is a string, int or float, got {type(ratio).__name__} {ratio!r}.')
    if isinstance(ratio, str):
        act, den = parse_ratio(ratio)
        if den != n:
            raise ValueError(f"Coding ratio {ratio!r} has denominator {den}, but the blocks have N = {n} subNNs: "
                             f"write it as 'N_act/{n}'.")
    elif isinstance(ratio, int):
        act = ratio
    else:
        act = round(float(ratio) * n)
        if abs(float(ratio) * n - act) > 1e-6:
            raise ValueError(f'Coding ratio {ratio} gives N_act = {float(ratio) * n:g} for N = {n}; r*N must be an '
                             f'integer.')
    if not 1 <= act <= n:
        raise ValueError(f'Coding ratio {ratio!r} gives N_act = {act}, outside 1..{n} (N = {n} subNNs).')
    return act


def parse_coding_ratios(
        ratios: Union[RatioSpec, Sequence[RatioSpec]], num_stages: int, num_subnns: int) -> Tuple[int, ...]:
    """N_act of every stage from one ratio per stage, given as a sequence or as '10/10,5/10,3/10'."""
    items = ratios if isinstance(ratios, (list, tuple)) else [ratios]  # a str item may be '10/10,5/10' (one CLI word)
    ratios = [p for r in items for p in (r.replace(',', ' ').split() if isinstance(r, str) else [r])]
    if len(ratios) != num_stages:
        raise ValueError(f'coding_ratios needs one ratio per stage ({num_stages} stages), got {len(ratios)}: '
                         f'{list(ratios)!r}.')
    return tuple(parse_coding_ratio(r, num_subnns) for r in ratios)


class Codebooks(nn.Module):
    """The (K, N) codebooks of a coded model as persistent uint8 buffers, one per ratio ('r3_10').

    Checkpoints carry the codebooks they were trained with, and loading checks them: a state_dict without
    codebooks (plain ResNeXt weights) loads; a different codebook is an error naming the differing codewords,
    except a different class count when the state_dict has no classifier (a new head), which warns.
    """

    def __init__(self, schemes: Mapping[str, 'CodingScheme'], device=None):
        super().__init__()
        self.head_in_checkpoint = True  # set by the model before loading (torch hands children a filtered dict)
        self.set_schemes(schemes, device=device)

    def set_schemes(self, schemes: Mapping[str, 'CodingScheme'], device=None) -> None:
        """(Re)place the codebook buffers, on `device` or where the current ones live."""
        if device is None:
            device = next(iter(self.buffers()), torch.empty(0)).device
        for key, scheme in schemes.items():
            self.register_buffer(key, torch.tensor(scheme.codewords, dtype=torch.uint8, device=device))

    def keys(self) -> List[str]:
        return [k for k, _ in self.named_buffers(recurse=False)]

    def get(self, key: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The (K, N) codebook of ratio `key` ('r3_10')."""
        return getattr(self, key).to(dtype)

    def _load_from_state_dict(
            self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        for key in self.keys():
            if prefix + key not in state_dict:
                continue  # plain ResNeXt weights carry no codebook: the model's own is kept
            ours, theirs = getattr(self, key), state_dict.pop(prefix + key).to(torch.uint8)
            new_head = theirs.dim() == 2 and theirs.shape[1] == ours.shape[1] and not self.head_in_checkpoint
            if theirs.shape != ours.shape and new_head:
                warnings.warn(f'Checkpoint codebook {key} is for {theirs.shape[0]} classes, the model has '
                              f'{ours.shape[0]}: keeping the model\'s codebook (fine-tuning to a new class count).')
            elif theirs.shape != ours.shape or not torch.equal(theirs.to(ours.device), ours):
                error_msgs.append(_mismatch_message(key, theirs, ours))
        unexpected_keys.extend(k for k in state_dict if k.startswith(prefix) and k[len(prefix):] not in self.keys())


def _mismatch_message(key: str, theirs: torch.Tensor, ours: torch.Tensor) -> str:
    act, n = parse_ratio(key)
    if theirs.shape != ours.shape:
        what = f'{theirs.shape[0]} codewords of length {theirs.shape[1]}, the model has {ours.shape[0]} of ' \
               f'length {ours.shape[1]}'
    else:
        rows = (theirs != ours.to(theirs.device)).any(dim=1).nonzero().flatten().tolist()
        word = lambda t, k: ''.join(str(int(b)) for b in t[k])  # noqa: E731
        what = '; '.join(f'class {k}: checkpoint {word(theirs, k)}, model {word(ours, k)}' for k in rows[:3])
        what += f' ({len(rows)} codewords differ)' if len(rows) > 3 else ''
    return (f'Codebook mismatch for ratio {act}/{n}: {what}. Coded blocks only work with the codebook they were '
            f'trained with: build the model with the checkpoint\'s codebooks (create_model(..., codebooks='
            f'{{ratio: codewords}}), or the same num_classes / coding_ratios).')
