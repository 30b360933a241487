"""Coding schemes for Coded ResNeXt (arXiv:2202.05343, Sec. 3.2.1 and Appendix A).

A coding scheme for a block with ratio r = N_act/N is a binary (K, N) table: row k is the codeword of
class k, column n is subNN n, and a "1" means that subNN n works for class k. The paper asks for:

* Rule A -- every codeword has exactly N_act ones. Mandatory: `CodingScheme` refuses anything else, and
  the generator only ever draws constant-weight words.
* Rule B -- column sums S_n (classes per subNN) balanced, S_max - S_min as small as possible. 0 needs
  r*K to be an integer (App. A); otherwise 1 is the best possible and a warning is issued.
  Implemented by `_select_balanced` (greedy pick, swap local search, single-1 moves).
* Rule C -- minimum pairwise Hamming distance H_min as high as possible. Implemented by
  `_lexicode` / the candidate pools and the descending search over d in `_search`, then the tabu
  search `_improve` where that falls short of the upper bound.

Algorithm (Algorithm 1 of App. A, vectorised, plus heuristics so large schemes take seconds, not hours):

1. Candidate pools of constant-weight words (rule A), each sorted in increasing integer order, the order
   Algorithm 1 relies on (line 12). Words are uint64 integers; the string of a codeword is the word's
   binary representation (column 0 = most significant bit), so integer order == string order.
   * all C(N, N_act) words when there are at most `_EXHAUSTIVE_LIMIT` of them (exactly Algorithm 1);
   * otherwise the weight-N_act words of (shortened) extended binary BCH codes of length 2^m -- a
     structured pool whose words are already pairwise at distance >= the code's minimum distance (e.g.
     the 1054 weight-16 words of the [32, 11, 12] code give H_min = 12 for ImageNet at r = 16/32) --
     and a deterministic pseudo-random sample of words (splitmix64, independent of numpy's RNG streams).
2. For d = upper bound (Plotkin-type pair average and Johnson's bounds on A(N, d, N_act),
   `_distance_upper_bound`, `_johnson_bound`) down to 2 in steps of 2 (distances
   between constant-weight words are even): a greedy lexicode with minimum distance d over each pool
   (Algorithm 1 lines 13-16, `_lexicode`; vectorised: take the first remaining word, drop every later
   word closer than d by popcount of XOR; it stops after 4K + 1024 words). Pools whose own minimum
   distance is >= d are taken whole.
3. If the lexicode has >= K words, `_select_balanced` chooses K of them balancing the column sums (the
   paper's line 20 search, done heuristically): a greedy pick of the words on the least used columns,
   a swap local search (a word may replace a chosen one only if it is >= d from all other chosen
   words) and single-1 moves from the fullest to the emptiest column that keep the distance >= d.
   The first d reaching the best balance possible (S_max - S_min = 0, or 1 when r*K is fractional)
   wins; otherwise at most two lower d are tried and the best (spread, then d) is returned.
4. When C(N, N_act) <= `_TABU_POOL_LIMIT` (every N <= 20, small N_act beyond) and step 3 ends below the upper
   bound (the lexicode of Algorithm 1 often packs too few words, e.g. 10 of the 13 weight-3 words of
   length 10 at distance 4), `_improve` tries each higher d, from the bound down: a tabu search on the
   conflicts (pairs closer than d) among K of all the words (`_ConflictSearch`: swap the word with the
   most conflicts for the outside word with the fewest, restarts from greedy lexicodes of pseudo-random
   pool orders after 100 x Luby(i) moves without progress, a fixed move budget per level), then a swap
   tabu search on the column sums that keeps every distance >= d (`_balance_in_pool`, best of up to 8
   codes). A higher d replaces step 3's result if its S_max - S_min is at most 2 above the ideal (or
   whatever it is, when `min_distance` asks for that d). With `min_distance` given, step 3's result is
   kept whenever it reaches min_distance: the recorded arguments of the frozen built-ins keep their
   codewords.

All arithmetic is on integers, ties are broken by index, and the only randomness is a counter-based
hash of `seed` (the pseudo-random pool) and numpy's PCG64 bit stream seeded with (seed, K, N, N_act, d)
(`random_raw` only, whose output numpy keeps fixed across versions), so the same arguments give the same
scheme on every machine, numpy version and PYTHONHASHSEED; the move budgets count moves, not seconds.
Built-in schemes (Table 4 of the paper for CIFAR-10, generated ones for CIFAR-100 and ImageNet-1k) are
frozen as JSON in ``timm_coded/schemes/``.

CLI: ``python -m timm_coded.codes --classes K --subnns N --active A [--min-distance D] [--json]``,
``--builtin NAME``, ``--list``. Generation supports N <= 64 (one uint64 per codeword).
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import json
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

if TYPE_CHECKING:  # torch is only needed by `CodingScheme.to_tensor`; keep the CLI light
    import torch

__all__ = ['CodingScheme', 'generate_scheme', 'get_scheme', 'BUILTIN_SCHEMES', 'builtin_names']

_MAX_SUBNNS = 64              # generation packs a codeword into one uint64
_EXHAUSTIVE_LIMIT = 1 << 19   # enumerate all C(N, N_act) words up to this many (C(20, 10) = 184756)
_RANDOM_POOL_SIZE = 1 << 18   # size of the pseudo-random pool when enumeration is too large
_MAX_CODE_DIM = 21            # largest linear-code dimension enumerated for a structured pool
_MAX_CONFLICT_WORK = 1 << 27  # pool size x K above which the swap search stays inside the lexicode
_MAX_SWAP_WORK = 1 << 30      # bounds the swap search: iterations x candidate words x N
_GREEDY_POOL_CAP = 1 << 16    # lexicodes larger than this are strided down before the greedy pick
_LEXICODE_FACTOR = 4          # a lexicode stops after 4 K + 1024 words
_BALANCE_FALLBACK_STEPS = 2   # lower d by at most 2 steps of 2 to trade distance for perfect balance
_TABU_POOL_LIMIT = 1 << 18    # the tabu search (rule C beyond the lexicode) runs when C(N, N_act) <= this
_TABU_WORK = 1 << 28          # budget per distance level: moves x (pool size + _TABU_MOVE_OVERHEAD) ...
_TABU_MOVE_OVERHEAD = 1 << 15  # ... the fixed cost of a move counted in pool words (a (re)start: K moves)
_TABU_PATIENCE = 100          # restart i gives up after 100 * luby(i) moves without a new best
_TABU_START_FACTOR = 2        # a (re)start takes K balanced words of a lexicode of up to 2 K words
_TABU_CACHE = 1 << 24         # K x pool size up to which the conflict rows of the chosen words are kept
_MAX_EXTRA_SPREAD = 2         # a higher distance is only taken with S_max - S_min <= ideal + 2 (rule B)
_BALANCE_TRIES = 8            # tabu-search codes balanced per distance level, at most ...
_BALANCE_TRY_WORK = 1 << 21   # ... and at most this / (balance pool size x N)
_BALANCE_WORK = 1 << 26       # balance moves x balance pool size x N, ...
_BALANCE_MIN_MOVES = 100      # ... at least 100 moves ...
_BALANCE_MAX_MOVES = 4000     # ... and at most 4000
_BALANCE_POOL_CAP = 1 << 15   # larger pools are cut down to this many words before balancing
_BALANCE_TENURE = 5           # a word swapped by the balance search stays put for 5 to 9 moves

CIFAR10_CLASSES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck')


# ---------------------------------------------------------------------------------------------------------
# Bit helpers
# ---------------------------------------------------------------------------------------------------------
def _popcount(x: np.ndarray) -> np.ndarray:
    """Number of set bits of every uint64 element."""
    if hasattr(np, 'bitwise_count'):  # numpy >= 2.0
        return np.bitwise_count(x)
    b = np.ascontiguousarray(x, dtype=np.uint64).view(np.uint8).reshape(x.shape + (8,))
    return _BYTE_POPCOUNT[b].sum(axis=-1, dtype=np.uint8)


_BYTE_POPCOUNT = np.array([bin(i).count('1') for i in range(256)], dtype=np.uint8)


def _shifts(n: int) -> np.ndarray:
    """Bit position of each column: column 0 is the most significant bit."""
    return np.arange(n - 1, -1, -1, dtype=np.uint64)


def _words_to_bits(words: np.ndarray, n: int) -> np.ndarray:
    """(M,) uint64 words -> (M, n) uint8 0/1 table."""
    return ((words[:, None] >> _shifts(n)[None, :]) & np.uint64(1)).astype(np.uint8)


def _pairwise_min_distance(bits: np.ndarray) -> int:
    """Minimum Hamming distance over all pairs of rows (chunked, any N)."""
    k, n = bits.shape
    if k < 2:
        return n
    x = bits.astype(np.float32)  # BLAS; exact, every value is an integer below 2^24
    weights = x.sum(axis=1)
    best = n
    for start in range(0, k, 512):
        blk = x[start:start + 512]
        dist = weights[start:start + 512, None] + weights[None, :] - 2 * (blk @ x.T)
        rows = np.arange(blk.shape[0])
        dist[rows, start + rows] = n + 1  # ignore the distance of a row to itself
        best = min(best, int(round(float(dist.min()))))
    return best


# ---------------------------------------------------------------------------------------------------------
# The coding scheme value object
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class CodingScheme:
    """Immutable (K, N) binary coding scheme; equal and hashable by content.

    Build one with `CodingScheme.from_codewords`, `from_json`, `get_scheme` or `generate_scheme`.
    `num_active` only needs to be given for an empty (K = 0) table.
    """
    codewords: np.ndarray
    name: Optional[str] = None
    class_names: Optional[Tuple[str, ...]] = None
    num_active: Optional[int] = None
    _cache: Dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        bits = _validate_table(self.codewords, self.num_active)
        object.__setattr__(self, 'codewords', bits)
        object.__setattr__(self, 'num_active', int(bits[0].sum()) if len(bits) else int(self.num_active or 0))
        if self.class_names is not None:
            names = tuple(str(c) for c in self.class_names)
            if len(names) != len(bits):
                raise ValueError(f'class_names has {len(names)} entries but the table has {len(bits)} codewords.')
            object.__setattr__(self, 'class_names', names)

    # --- construction -------------------------------------------------------------------------------
    @classmethod
    def from_codewords(
            cls,
            rows: Any,
            name: Optional[str] = None,
            class_names: Optional[Sequence[str]] = None,
            *,
            num_active: Optional[int] = None,
    ) -> 'CodingScheme':
        """Validated scheme from '0101' strings, nested 0/1 lists, a numpy array or a torch tensor."""
        if isinstance(rows, CodingScheme):
            return rows if name is None and class_names is None else cls(
                rows.codewords, name or rows.name, class_names or rows.class_names, rows.num_active)
        return cls(_rows_to_array(rows), name, tuple(class_names) if class_names is not None else None, num_active)

    @classmethod
    def from_json(cls, data: Union[str, Dict[str, Any]]) -> 'CodingScheme':
        """Inverse of `to_json` (accepts the dict or its JSON text; extra keys are ignored)."""
        if isinstance(data, str):
            data = json.loads(data)
        rows = data['codewords']
        if not rows:
            rows = np.zeros((0, int(data['N'])), dtype=np.uint8)
        scheme = cls.from_codewords(rows, data.get('name'), data.get('class_names'), num_active=data.get('N_act'))
        for key, value in (('K', scheme.num_classes), ('N', scheme.num_subnns), ('N_act', scheme.num_active)):
            if key in data and int(data[key]) != value:
                raise ValueError(f'JSON field {key} = {data[key]} does not match the codewords ({key} = {value}).')
        return scheme

    # --- shape ------------------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """K, the number of codewords."""
        return int(self.codewords.shape[0])

    @property
    def num_subnns(self) -> int:
        """N, the codeword length."""
        return int(self.codewords.shape[1])

    @property
    def ratio(self) -> float:
        """r = N_act / N."""
        return self.num_active / self.num_subnns

    @property
    def ratio_str(self) -> str:
        return f'{self.num_active}/{self.num_subnns}'

    # --- quality (paper rules B and C) ------------------------------------------------------------------
    @property
    def min_distance(self) -> int:
        """H_min, the minimum pairwise Hamming distance (N when K < 2: there is no pair)."""
        if 'min_distance' not in self._cache:
            self._cache['min_distance'] = _pairwise_min_distance(self.codewords)
        return self._cache['min_distance']

    @property
    def column_sums(self) -> np.ndarray:
        """(N,) number of classes each subNN works for."""
        sums = self.codewords.sum(axis=0, dtype=np.int64)
        sums.setflags(write=False)
        return sums

    @property
    def s_min(self) -> int:
        return int(self.column_sums.min()) if self.num_subnns else 0

    @property
    def s_max(self) -> int:
        return int(self.column_sums.max()) if self.num_subnns else 0

    def quality(self) -> Dict[str, Any]:
        """Rule-by-rule summary: weight, H_min, S_min, S_max and the best spread possible."""
        return dict(
            num_classes=self.num_classes, num_subnns=self.num_subnns, num_active=self.num_active,
            ratio=self.ratio_str, min_distance=self.min_distance, s_min=self.s_min, s_max=self.s_max,
            spread=self.s_max - self.s_min, ideal_spread=_ideal_spread(self.num_classes, self.num_subnns,
                                                                        self.num_active),
        )

    # --- access -----------------------------------------------------------------------------------------
    def active_indices(self, k: int) -> Tuple[int, ...]:
        """SubNNs that work for class k (the 1s of its codeword)."""
        return tuple(int(i) for i in np.flatnonzero(self.codewords[k]))

    def inactive_indices(self, k: int) -> Tuple[int, ...]:
        """SubNNs that do not work for class k (the 0s of its codeword)."""
        return tuple(int(i) for i in np.flatnonzero(self.codewords[k] == 0))

    def to_tensor(self, dtype: Optional['torch.dtype'] = None, device: Any = None) -> 'torch.Tensor':
        """(K, N) tensor of the codewords, float32 unless `dtype` says otherwise."""
        import torch
        return torch.tensor(self.codewords, dtype=dtype or torch.float32, device=device)

    def to_strings(self) -> List[str]:
        """One '0'/'1' string per codeword."""
        return [''.join('1' if b else '0' for b in row) for row in self.codewords]

    def to_json(self) -> Dict[str, Any]:
        """JSON-serialisable dict (codewords as strings)."""
        return dict(name=self.name, K=self.num_classes, N=self.num_subnns, N_act=self.num_active,
                    class_names=list(self.class_names) if self.class_names is not None else None,
                    codewords=self.to_strings())

    def fingerprint(self) -> str:
        """sha256 hex of K, N and the bits; identifies a codebook (e.g. inside checkpoints)."""
        payload = f'{self.num_classes},{self.num_subnns}\n' + '\n'.join(self.to_strings())
        return hashlib.sha256(payload.encode('ascii')).hexdigest()

    # --- value semantics ----------------------------------------------------------------------------
    def _key(self) -> tuple:
        return (self.codewords.shape, self.codewords.tobytes(), self.num_active, self.name, self.class_names)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CodingScheme) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f'CodingScheme(name={self.name!r}, K={self.num_classes}, N={self.num_subnns}, '
                f'N_act={self.num_active}, min_distance={self.min_distance}, s_min={self.s_min}, '
                f's_max={self.s_max})')


def _rows_to_array(rows: Any) -> np.ndarray:
    """Strings / nested lists / array / tensor -> 2-D numpy array (not yet validated)."""
    if hasattr(rows, 'detach'):  # torch tensor
        rows = rows.detach().cpu().numpy()
    if isinstance(rows, np.ndarray):
        return rows
    rows = list(rows)
    if not rows:
        raise ValueError('The coding table is empty; pass a (0, N) array (and num_active) for K = 0.')
    if all(isinstance(r, str) for r in rows):
        return _strings_to_array(rows)
    lengths = [len(r) for r in rows]
    if len(set(lengths)) > 1:
        i = next(i for i, n in enumerate(lengths) if n != lengths[0])
        raise ValueError(f'Ragged coding table: row {i} has {lengths[i]} entries, row 0 has {lengths[0]}; '
                         f'every codeword needs one entry per subNN.')
    return np.asarray(rows)


def _strings_to_array(rows: Sequence[str]) -> np.ndarray:
    rows = [r.strip() for r in rows]
    for i, r in enumerate(rows):
        if len(r) != len(rows[0]):
            raise ValueError(f'Ragged coding table: codeword {i} {r!r} has length {len(r)}, codeword 0 has '
                             f'length {len(rows[0])}; every codeword needs one character per subNN.')
        if set(r) - {'0', '1'}:
            raise ValueError(f'Codeword {i} {r!r} is not binary: use only the characters 0 and 1.')
    return np.array([[c == '1' for c in r] for r in rows], dtype=np.uint8).reshape(len(rows), len(rows[0]))


def _validate_table(table: Any, num_active: Optional[int]) -> np.ndarray:
    """Check a (K, N) table against rule A and distinctness; return a read-only uint8 copy."""
    arr = np.asarray(table)
    if arr.dtype == object or arr.ndim != 2:
        raise ValueError(f'A coding table must be 2-D (K codewords x N subNNs) and not ragged; got shape '
                         f'{arr.shape} with dtype {arr.dtype}.')
    if arr.shape[1] < 1:
        raise ValueError('Codewords must have at least one entry (N >= 1).')
    if arr.size and not np.isin(arr, (0, 1)).all():
        bad = arr[~np.isin(arr, (0, 1))].ravel()[0]
        raise ValueError(f'The coding table is not binary: found the value {bad!r}; entries must be 0 or 1.')
    bits = np.ascontiguousarray(arr.astype(np.uint8))
    k, n = bits.shape
    if k == 0:
        if num_active is not None:
            _check_num_active(n, int(num_active))
    else:
        weights = bits.sum(axis=1)
        if (weights != weights[0]).any():
            i = int(np.flatnonzero(weights != weights[0])[0])
            raise ValueError(f'Rule A violated: codeword {i} has {weights[i]} ones but codeword 0 has '
                             f'{weights[0]}; every codeword must have the same number N_act of ones.')
        _check_num_active(n, int(weights[0]))
        if num_active is not None and int(num_active) != int(weights[0]):
            raise ValueError(f'num_active = {num_active} but the codewords have {weights[0]} ones.')
        if weights[0] < n:
            _check_distinct(bits)
    bits.setflags(write=False)
    return bits


def _check_distinct(bits: np.ndarray) -> None:
    """Every class needs its own codeword (duplicates only allowed for the all-ones plain block)."""
    _, first, counts = np.unique(bits, axis=0, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup_row = bits[first[np.flatnonzero(counts > 1)[0]]]
        idx = np.flatnonzero((bits == dup_row).all(axis=1))
        word = ''.join(str(int(b)) for b in dup_row)
        raise ValueError(f'Duplicate codewords: rows {int(idx[0])} and {int(idx[1])} are both {word}; each '
                         f'class needs a distinct codeword.')


def _check_num_active(n: int, num_active: int) -> None:
    if not 1 <= num_active <= n:
        raise ValueError(f'N_act = {num_active} is outside 1..N = 1..{n}: each codeword needs between 1 and '
                         f'N active subNNs; choose a ratio N_act/N with 0 < N_act <= N.')


# ---------------------------------------------------------------------------------------------------------
# Argument checks and bounds
# ---------------------------------------------------------------------------------------------------------
def _ideal_spread(k: int, n: int, a: int) -> int:
    """Smallest achievable S_max - S_min: 0 if r*K = K*N_act/N is an integer, else 1 (App. A)."""
    return 0 if (k * a) % n == 0 else 1


def _check_args(k: int, n: int, a: int, warn: bool = True) -> None:
    """ValueErrors for impossible (K, N, N_act); warning when perfect column balance is impossible."""
    if k < 0:
        raise ValueError(f'num_classes K = {k} must be >= 0.')
    if n < 1:
        raise ValueError(f'num_subnns N = {n} must be >= 1.')
    _check_num_active(n, a)
    if a == n:
        return  # the plain block: every class uses every subNN
    if n > _MAX_SUBNNS:
        raise ValueError(f'N = {n} subNNs: the generator supports N <= {_MAX_SUBNNS}; pass your own table to '
                         f'CodingScheme.from_codewords for longer codewords.')
    available = math.comb(n, a)
    if available < k:
        n2 = n + 1
        while math.comb(n2, a) < k:
            n2 += 1
        fix = f'Use a larger N (N = {n2} gives C({n2}, {a}) = {math.comb(n2, a)})'
        if math.comb(n, n // 2) >= k:
            fix += f' or an N_act closer to N/2 = {n / 2:g} (C({n}, {n // 2}) = {math.comb(n, n // 2)})'
        raise ValueError(f'Not enough distinct codewords: C(N, N_act) = C({n}, {a}) = {available} < K = {k} '
                         f'classes. {fix}.')
    if warn and k and _ideal_spread(k, n, a):
        warnings.warn(
            f'r*K = {a}/{n} * {k} = {k * a / n:g} is not an integer, so the column sums cannot all be equal '
            f'(rule B, App. A); the best possible is S_max - S_min = 1.', stacklevel=3)


@functools.lru_cache(maxsize=None)
def _johnson_bound(n: int, d: int, w: int) -> int:
    """Upper bound on A(n, d, w), the size of a constant-weight-w code of length n and distance d.

    The smaller of Johnson's two recursions A(n, d, w) <= floor(n / w * A(n-1, d, w-1)) and
    A(n, d, w) <= floor(n / (n-w) * A(n-1, d, w)), his second bound floor(delta n / (w^2 - w n + delta n))
    (delta = d/2, when the denominator is positive) and the exact small cases: A = 1 when w < delta and
    A = floor(n / w) when w = delta (disjoint supports). Exact for e.g. A(10, 4, 3) = 13, A(10, 4, 5) = 36,
    A(16, 8, 8) = 30 and A(32, 16, 16) = 62.
    """
    d += d % 2  # two words of equal weight are an even distance apart
    w = min(w, n - w)
    if d <= 2:
        return math.comb(n, w)
    delta = d // 2
    if w < delta:
        return 1
    if w == delta:
        return n // w
    best = min(n * _johnson_bound(n - 1, d, w - 1) // w, n * _johnson_bound(n - 1, d, w) // (n - w),
               math.comb(n, w))
    denom = w * w - w * n + delta * n  # second Johnson bound
    if denom > 0:
        best = min(best, (delta * n) // denom)
    return best


def _distance_upper_bound(k: int, n: int, a: int) -> int:
    """Even upper bound on H_min for K words (pair-averaging/Plotkin + Johnson)."""
    if k < 2:
        return n
    d = 2 * min(a, n - a)
    q, rem = divmod(k * a, n)  # most balanced column sums maximise the total pairwise distance
    total = rem * (q + 1) * (k - q - 1) + (n - rem) * q * (k - q)
    d = min(d, (2 * total) // (k * (k - 1)))
    d -= d % 2
    while d > 2 and _johnson_bound(n, d, a) < k:
        d -= 2
    return max(d, 2)


# ---------------------------------------------------------------------------------------------------------
# Candidate pools of constant-weight words (rule A), in increasing integer order
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Pool:
    label: str
    words: np.ndarray  # sorted uint64
    distance: int      # every two words of the pool are at least this far apart


def _binomial_table(n: int, k: int) -> np.ndarray:
    return np.array([[math.comb(i, j) for j in range(k + 1)] for i in range(n + 1)], dtype=np.int64)


def _unrank(ranks: np.ndarray, n: int, a: int) -> np.ndarray:
    """Colex ranks -> weight-a words; increasing ranks give increasing integers."""
    table = _binomial_table(n, a)
    r = np.asarray(ranks, dtype=np.int64).copy()
    words = np.zeros(r.shape, dtype=np.uint64)
    for i in range(a, 0, -1):
        c = np.searchsorted(table[:, i], r, side='right') - 1  # largest c with C(c, i) <= r
        r -= table[c, i]
        words |= np.uint64(1) << c.astype(np.uint64)
    return words


def _splitmix64(seed: int, count: int) -> np.ndarray:
    """`count` pseudo-random uint64 from a counter-based hash of `seed` (stable across numpy versions)."""
    golden = np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over='ignore'):
        z = (np.arange(1, count + 1, dtype=np.uint64) + np.uint64(seed & 0xFFFFFFFF) * np.uint64(1 << 32)) * golden
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _exhaustive_pool(n: int, a: int) -> _Pool:
    return _Pool('all', _unrank(np.arange(math.comb(n, a)), n, a), 2)


def _random_pool(n: int, a: int, seed: int) -> _Pool:
    total = math.comb(n, a)
    ranks = np.unique(_splitmix64(seed, _RANDOM_POOL_SIZE) % np.uint64(total)).astype(np.int64)
    return _Pool(f'random(seed={seed})', _unrank(ranks, n, a), 2)


_PRIMITIVE_POLYS = {3: 0b1011, 4: 0b10011, 5: 0b100101, 6: 0b1000011}


def _gf2_polymul(p: int, q: int) -> int:
    """Product of two GF(2)[x] polynomials stored as bit masks."""
    out = 0
    while q:
        if q & 1:
            out ^= p
        p <<= 1
        q >>= 1
    return out


@functools.lru_cache(maxsize=None)
def _gf_tables(m: int) -> Tuple[Tuple[int, ...], Dict[int, int]]:
    """Exponential (doubled) and logarithm tables of GF(2^m) built on a primitive polynomial."""
    n = (1 << m) - 1
    exp = [1] * (2 * n)
    for j in range(1, 2 * n):
        x = exp[j - 1] << 1
        exp[j] = (x ^ _PRIMITIVE_POLYS[m]) if x >> m else x
    return tuple(exp), {exp[j]: j for j in range(n)}


def _minimal_polynomial(i: int, m: int) -> Tuple[int, Tuple[int, ...]]:
    """Minimal polynomial over GF(2) of alpha^i in GF(2^m), and the cyclotomic coset of i."""
    n = (1 << m) - 1
    exp, log = _gf_tables(m)
    coset, j = [], i % n
    while j not in coset:
        coset.append(j)
        j = 2 * j % n
    poly = [1]  # coefficients in GF(2^m), lowest degree first
    for j in coset:  # multiply by (x + alpha^j)
        nxt = [0] * (len(poly) + 1)
        for t, c in enumerate(poly):
            nxt[t + 1] ^= c
            if c:
                nxt[t] ^= exp[log[c] + j]
        poly = nxt
    return sum(c << t for t, c in enumerate(poly)), tuple(sorted(coset))


def _bch_generators(m: int) -> List[int]:
    """Generator polynomials of the narrow-sense binary BCH codes of length 2^m - 1 (distinct codes)."""
    n = (1 << m) - 1
    gens, g, seen = [], 1, set()
    for i in range(1, n):
        poly, coset = _minimal_polynomial(i, m)
        if coset not in seen:
            seen.add(coset)
            g = _gf2_polymul(g, poly)
            if g.bit_length() - 1 < n:
                gens.append(g)
    return gens


def _shortened_basis(basis: List[int], keep_bits: int) -> List[int]:
    """Basis of the subcode that is zero outside the low `keep_bits` bits (Gaussian elimination)."""
    rows = list(basis)
    top = max((r.bit_length() for r in rows), default=0)
    for bit in range(keep_bits, top):
        at = next((i for i, r in enumerate(rows) if r >> bit & 1), None)
        if at is not None:
            pivot = rows.pop(at)
            rows = [r ^ pivot if r >> bit & 1 else r for r in rows]
    return rows


def _span(basis: List[int]) -> np.ndarray:
    """All 2^k codewords of the binary linear code spanned by `basis`."""
    words = np.zeros(1 << len(basis), dtype=np.uint64)
    for i, b in enumerate(basis):
        words[1 << i:2 << i] = words[:1 << i] ^ np.uint64(b)
    return words


def _bch_pools(n: int, a: int) -> List[_Pool]:
    """Weight-a words of extended BCH codes of length 2^m >= n, shortened to n (structured pools)."""
    m = max(3, (n - 1).bit_length())
    if m not in _PRIMITIVE_POLYS:
        return []
    length = 1 << m
    pools = []
    for g in _bch_generators(m):
        k = length - 1 - (g.bit_length() - 1)
        basis = [(g << i) | ((bin(g).count('1') & 1) << (length - 1)) for i in range(k)]  # + parity bit
        basis = _shortened_basis(basis, n)
        if len(basis) > _MAX_CODE_DIM or not basis:
            continue
        code = _span(basis)
        weights = _popcount(code)
        words = np.sort(code[weights == a])
        if words.size:
            pools.append(_Pool(f'eBCH[{length},{k}] shortened to [{n},{len(basis)}]', words,
                               int(weights[1:].min())))
    return sorted(pools, key=lambda p: -p.distance)


def _candidate_pools(n: int, a: int, seed: int) -> List[_Pool]:
    """All pools for (N, N_act): exhaustive when small, else structured + pseudo-random."""
    if math.comb(n, a) <= _EXHAUSTIVE_LIMIT:
        return [_exhaustive_pool(n, a)]
    return _bch_pools(n, a) + [_random_pool(n, a, seed)]


# ---------------------------------------------------------------------------------------------------------
# Rule C: greedy lexicode (Algorithm 1, lines 13-16)
# ---------------------------------------------------------------------------------------------------------
def _lexicode(words: np.ndarray, d: int, limit: Optional[int] = None) -> np.ndarray:
    """Greedy code of minimum distance d: scan `words` in order, keep each word >= d from all kept.

    Stops after `limit` words (the search only needs a few times K of them).
    """
    kept = []
    rest = words
    while rest.size and (limit is None or len(kept) < limit):
        w = rest[0]
        kept.append(w)
        rest = rest[1:]
        rest = rest[_popcount(rest ^ w) >= d]
    return np.array(kept, dtype=np.uint64)


def _code_for_distance(pool: _Pool, d: int, limit: Optional[int] = None) -> np.ndarray:
    """Codewords of `pool` pairwise >= d apart (the whole pool when its own distance suffices)."""
    return pool.words if pool.distance >= d else _lexicode(pool.words, d, limit)


# ---------------------------------------------------------------------------------------------------------
# Rule B: choose K words with balanced column sums (Algorithm 1, lines 19-27, heuristically)
# ---------------------------------------------------------------------------------------------------------
def _greedy_pick(words: np.ndarray, k: int) -> np.ndarray:
    """Indices of k words, each time the one whose columns are least used so far (ties: lowest index)."""
    cost = np.zeros(words.size, dtype=np.int64)  # sum over a word's columns of the current column sums
    taken = np.zeros(words.size, dtype=bool)
    picked = np.empty(k, dtype=np.int64)
    big = np.iinfo(np.int64).max
    for step in range(k):
        i = int(np.argmin(np.where(taken, big, cost)))
        picked[step] = i
        taken[i] = True
        cost += _popcount(words & words[i])
    return picked


def _stride(words: np.ndarray, cap: int) -> np.ndarray:
    """At most `cap` words spread evenly over `words`."""
    if words.size <= cap:
        return words
    return words[(np.arange(cap, dtype=np.int64) * words.size) // cap]


class _SwapSearch:
    """Swap local search on the column sums that keeps the minimum distance >= d.

    The state is a set S of K word indices into `words`. A move swaps u in S for v outside S; it is legal
    when v is >= d from every word of S except possibly u (tracked by `conf_cnt` / `conf_sum`, the number
    and index sum of the chosen words closer than d). The objective is sum_n (N*S_n - K*N_act)^2 (integer,
    so the search is exactly reproducible); a move changes it by N^2*d_H(u,v) + 2N*(e.v - e.u).
    """

    def __init__(self, words: np.ndarray, chosen: np.ndarray, n: int, a: int, d: int, pairwise_ok: bool):
        self.words, self.n, self.d = words, n, d
        self.k = chosen.size
        self.bits = _words_to_bits(words, n).astype(np.int64)
        self.inside = np.zeros(words.size, dtype=bool)
        self.inside[chosen] = True
        self.sums = self.bits[chosen].sum(axis=0)
        self.target = self.k * a  # N * (ideal column sum)
        self.conf_cnt = np.zeros(words.size, dtype=np.int64)
        self.conf_sum = np.zeros(words.size, dtype=np.int64)
        self.track = not pairwise_ok
        if self.track:
            for u in chosen:
                self._conflicts(int(u), +1)
        self.tabu = np.full(words.size, -1, dtype=np.int64)

    def _conflicts(self, u: int, sign: int) -> None:
        near = _popcount(self.words ^ self.words[u]) < self.d
        near[u] = False
        self.conf_cnt += sign * near
        self.conf_sum += sign * u * near

    def spread(self) -> int:
        return int(self.sums.max() - self.sums.min())

    def _best_move(self, it: int, top: int = 48) -> Tuple[int, int, int]:
        """(delta, u, v) of the best legal non-tabu move; delta is N * (change of the objective)."""
        n = self.n
        e = n * self.sums - self.target
        lin = self.bits @ e
        ok_v = ~self.inside & (self.tabu < it)
        best = (np.iinfo(np.int64).max, -1, -1)
        if self.track:  # v conflicts with exactly one chosen word u: swapping them keeps distance >= d
            v1 = np.flatnonzero(ok_v & (self.conf_cnt == 1))
            if v1.size:
                u1 = self.conf_sum[v1]
                keep = self.tabu[u1] < it
                v1, u1 = v1[keep], u1[keep]
                delta = n * _popcount(self.words[v1] ^ self.words[u1]).astype(np.int64) + 2 * (lin[v1] - lin[u1])
                if delta.size:
                    j = int(np.argmin(delta))
                    best = (int(delta[j]), int(u1[j]), int(v1[j]))
        free = np.flatnonzero(ok_v & (self.conf_cnt == 0))
        members = np.flatnonzero(self.inside & (self.tabu < it))
        if free.size and members.size:
            fv = free[np.argsort(lin[free], kind='stable')[:top]]
            mu = members[np.argsort(-lin[members], kind='stable')[:top]]
            dist = _popcount(self.words[mu][:, None] ^ self.words[fv][None, :]).astype(np.int64)
            delta = n * dist + 2 * (lin[fv][None, :] - lin[mu][:, None])
            j = int(np.argmin(delta))
            if delta.flat[j] < best[0]:
                best = (int(delta.flat[j]), int(mu[j // fv.size]), int(fv[j % fv.size]))
        return best

    def _apply(self, u: int, v: int, it: int, tenure: int) -> None:
        self.inside[u], self.inside[v] = False, True
        self.sums += self.bits[v] - self.bits[u]
        if self.track:
            self._conflicts(u, -1)
            self._conflicts(v, +1)
        self.tabu[u] = self.tabu[v] = it + tenure

    def run(self, ideal: int, max_iter: int, patience: int = 200) -> np.ndarray:
        """Improve until the spread is `ideal` or no progress; return the best chosen indices found."""
        best_key, best_set, stale = self._key(), np.flatnonzero(self.inside), 0
        for it in range(max_iter):
            if self.spread() <= ideal or stale > patience:
                break
            delta, u, v = self._best_move(it)
            if u < 0 or delta > 0:
                break
            self._apply(u, v, it, tenure=7 if delta == 0 else 0)
            key = self._key()
            if key < best_key:
                best_key, best_set, stale = key, np.flatnonzero(self.inside), 0
            else:
                stale += 1
        return best_set

    def _key(self) -> Tuple[int, int]:
        e = self.n * self.sums - self.target
        return self.spread(), int((e * e).sum())


def _shift_balance(words: np.ndarray, n: int, d: int, ideal: int, budget: int = 1 << 26) -> np.ndarray:
    """Move single 1s from the fullest to the emptiest columns while every distance stays >= d.

    Works on the chosen words directly (no pool), so it also balances schemes drawn from sparse pools.
    A move of a 1 from column i to column j with S_i - S_j >= 2 strictly lowers sum_n S_n^2.
    """
    words = words.copy()
    sums = _words_to_bits(words, n).sum(axis=0).astype(np.int64)
    shifts = _shifts(n)
    rows = np.arange(words.size)
    while sums.max() - sums.min() > ideal and budget > 0:
        move = None
        for i in np.argsort(-sums, kind='stable'):
            for j in np.argsort(sums, kind='stable'):
                if sums[i] - sums[j] < 2 or budget <= 0:
                    break
                bit_i, bit_j = np.uint64(1) << shifts[i], np.uint64(1) << shifts[j]
                src = rows[((words & bit_i) != 0) & ((words & bit_j) == 0)]
                if not src.size:
                    continue
                cand = words[src] ^ (bit_i | bit_j)
                dist = _popcount(cand[:, None] ^ words[None, :])
                dist[np.arange(src.size), src] = n  # the word being moved
                budget -= dist.size
                ok = np.flatnonzero(dist.min(axis=1) >= d)
                if ok.size:
                    move = (int(src[ok[0]]), cand[ok[0]], i, j)
                    break
            if move is not None or budget <= 0:
                break
        if move is None:
            break
        src_row, word, i, j = move
        words[src_row] = word
        sums[i] -= 1
        sums[j] += 1
    return words


def _select_balanced(pool: _Pool, code: np.ndarray, k: int, n: int, a: int, d: int) -> np.ndarray:
    """K words pairwise >= d apart with column sums as equal as possible (sorted uint64)."""
    start = code if code.size == k else _stride(code, max(_GREEDY_POOL_CAP, 8 * k))
    if start.size > k:
        start = np.sort(start[_greedy_pick(start, k)])
    if pool.distance < d and pool.words.size * k <= _MAX_CONFLICT_WORK:
        words, pairwise_ok = pool.words, False  # may swap in any pool word that keeps the distance
    else:
        words, pairwise_ok = _stride(code, max(_GREEDY_POOL_CAP, 8 * k)), True
        words = np.union1d(words, start)
    chosen = np.searchsorted(words, start)
    search = _SwapSearch(words, chosen, n, a, d, pairwise_ok)
    ideal = _ideal_spread(k, n, a)
    max_iter = min(max(1000, 4 * k), max(64, _MAX_SWAP_WORK // (words.size * n)))
    chosen = words[search.run(ideal, max_iter)]
    return np.sort(_shift_balance(chosen, n, d, ideal))


# ---------------------------------------------------------------------------------------------------------
# Rule C beyond the lexicode: tabu search for K words pairwise >= d apart
# ---------------------------------------------------------------------------------------------------------
def _random_stream(seed: int, *tags: int) -> np.random.PCG64:
    """numpy's PCG64 seeded from (seed, tags); only `random_raw` is used, whose stream numpy keeps fixed."""
    return np.random.PCG64(np.random.SeedSequence([seed & 0xFFFFFFFF, *tags]))


def _draw(stream: np.random.PCG64, bound: int) -> int:
    """One pseudo-random integer in [0, bound)."""
    return int(stream.random_raw() % bound)


class _ConflictSearch:
    """Tabu search over K-subsets of `words` minimising the number of pairs closer than d.

    A min-conflicts local search on the graph whose edges join words closer than d: a move swaps the
    chosen word with the most conflicts for the outside word with the fewest conflicts with the rest
    (ties broken pseudo-randomly), and the word swapped out may not come back for a few moves unless that
    gives a new best. `score[v]` counts the chosen words closer than d to v, plus `offset` for chosen
    words; a move costs one popcount pass and two integer passes over the pool.
    """

    def __init__(self, words: np.ndarray, k: int, d: int, stream: np.random.PCG64):
        self.words, self.k, self.d, self.stream = words, k, d, stream
        self.m = words.size
        self.cache_rows = k * self.m <= _TABU_CACHE
        small = k < 1 << 12  # scores stay below 2 * offset + K (a tabu word may be back inside)
        self.dtype, self.offset = (np.int16, 1 << 13) if small else (np.int32, 1 << 28)

    def _near(self, i: int) -> np.ndarray:
        """0/1 flags of the pool words closer than d to word i (i itself excluded)."""
        near = (_popcount(self.words ^ self.words[i]) < self.d).view(np.int8).astype(self.dtype)
        near[i] = 0
        return near

    def _enter(self, i: int, score: np.ndarray) -> None:
        near = self._near(i)
        score += near
        score[i] += self.offset
        if self.cache_rows:
            self.rows[i] = near

    def _start(self, order: np.ndarray) -> None:
        """Greedy start: the lexicode of the pool in `order` (if longer than K, the K words `_greedy_pick`
        chooses for balance), filled up with the least conflicting words."""
        self.rows: Dict[int, np.ndarray] = {}
        self.score = np.zeros(self.m, dtype=self.dtype)
        kept, rest = [], order
        while rest.size and len(kept) < _TABU_START_FACTOR * self.k:
            kept.append(int(rest[0]))
            rest = rest[1:][_popcount(self.words[rest[1:]] ^ self.words[rest[0]]) >= self.d]
        if len(kept) > self.k:
            kept = [kept[i] for i in _greedy_pick(self.words[kept], self.k)]
        for i in kept:
            self._enter(i, self.score)
        while len(kept) < self.k:  # ties: the first word of `order`
            i = int(order[np.argmin(self.score[order])])
            kept.append(i)
            self._enter(i, self.score)
        self.members = np.array(kept, dtype=np.int64)
        self.conflicts = int(self.score[self.members].sum(dtype=np.int64) - self.k * self.offset) // 2

    def _argmin_from(self, values: np.ndarray, start: int) -> int:
        """Index of the smallest value, ties going to the first one at or after `start` (cyclically)."""
        i = int(np.argmin(values[start:])) + start
        if start:
            j = int(np.argmin(values[:start]))
            if values[j] < values[i]:
                return j
        return i

    def _step(self, it: int, tabu_until: np.ndarray, tabu: List[int], best: int) -> None:
        """One move (`best`: the fewest conflicts of this restart, for the aspiration criterion)."""
        t = self.score[self.members].astype(np.int64) - self.offset
        pos = self._argmin_from(-t, _draw(self.stream, self.k))
        u = int(self.members[pos])
        near_u = self.rows.pop(u) if self.cache_rows else self._near(u)
        after = self.score - near_u  # conflicts of each outside word once u has left
        v = self._argmin_from(after, _draw(self.stream, self.m))
        if tabu_until[v] > it and self.conflicts - int(t[pos]) + int(after[v]) >= best:
            active = np.array([i for i in tabu if tabu_until[i] > it], dtype=np.int64)
            after[active] += self.offset  # no new best: respect the tabu list ...
            allowed = self._argmin_from(after, _draw(self.stream, self.m))
            after[active] -= self.offset
            if after[allowed] < self.offset:  # ... unless every outside word is tabu
                v = allowed
        self.conflicts += int(after[v]) - int(t[pos])
        after[u] -= self.offset
        self._enter(v, after)
        self.score = after
        self.members[pos] = v
        tabu_until[u] = it + 1 + self.k // 8 + _draw(self.stream, 8)
        tabu[:] = [i for i in tabu if tabu_until[i] > it] + [u]

    def solutions(self, orders: Iterator[np.ndarray], budget: int) -> Iterator[np.ndarray]:
        """Sorted indices of K words pairwise >= d apart, one per success, until `budget` is spent.

        A move costs 1 and a (re)start K (its K popcount passes over the pool). Restart i starts
        from the next order and gives up after `_TABU_PATIENCE * luby(i)` moves without a new best (Luby's
        universal restart sequence 1, 1, 2, 1, 1, 2, 4, ...).
        """
        self.spent = 0
        for restart, order in enumerate(orders):
            self._start(order)
            self.spent += self.k
            tabu_until, tabu = np.zeros(self.m, dtype=np.int64), []
            best, since, limit = self.conflicts, 0, _TABU_PATIENCE * _luby(restart)
            while self.conflicts and self.spent < budget and since < limit:
                self._step(self.spent, tabu_until, tabu, best)
                self.spent += 1
                since += 1
                if self.conflicts < best:
                    best, since = self.conflicts, 0
            if not self.conflicts:
                yield np.sort(self.members)
            if self.spent >= budget:
                return


def _luby(i: int) -> int:
    """Term i (from 0) of Luby's sequence 1, 1, 2, 1, 1, 2, 4, 1, 1, 2, 1, 1, 2, 4, 8, ..."""
    i += 1
    while True:
        k = i.bit_length()
        if i == (1 << k) - 1:
            return 1 << (k - 1)
        i -= (1 << (k - 1)) - 1


def _search_orders(m: int, seed: int, tag: Tuple[int, ...]) -> Iterator[np.ndarray]:
    """Pool orders for the restarts: increasing order (Algorithm 1), then pseudo-random ones.

    The pseudo-random orders are one random permutation composed with random affine maps
    i -> (step * i + shift) mod m (bijections: gcd(step, m) = 1), far cheaper than fresh permutations.
    """
    yield np.arange(m)
    stream = _random_stream(seed, *tag)
    perm = np.argsort(stream.random_raw(m), kind='stable')
    yield perm
    idx = np.arange(m, dtype=np.int64)
    while True:
        step = 1 + _draw(stream, m - 1) if m > 2 else 1
        if math.gcd(step, m) == 1:
            yield perm[(idx * step + _draw(stream, m)) % m]


def _tabu_codes(words: np.ndarray, k: int, n: int, a: int, d: int, seed: int) -> Iterator[np.ndarray]:
    """K-word codes of distance >= d from all the weight-a `words`, as the tabu search finds them (in budget)."""
    budget = _TABU_WORK // (words.size + _TABU_MOVE_OVERHEAD)  # 8000 moves for N = 10, 1200 for C(20, 10)
    search = _ConflictSearch(words, k, d, _random_stream(seed, k, n, a, d, 1))
    for found in search.solutions(_search_orders(words.size, seed, (k, n, a, d, 0)), budget):
        yield words[found]


class _TabuSwapSearch(_SwapSearch):
    """`_SwapSearch` that also takes uphill moves (tabu search), so it leaves local minima of the balance."""

    def run(self, ideal: int, max_iter: int, patience: int = 200) -> np.ndarray:
        """The best-balanced chosen indices met (the move taken is the best legal one, even uphill)."""
        best_key, best_set, stale = self._key(), np.flatnonzero(self.inside), 0
        for it in range(max_iter):
            if best_key[0] <= ideal or stale > patience:
                break
            _, u, v = self._best_move(it)
            if u < 0:
                break
            self._apply(u, v, it, tenure=_BALANCE_TENURE + it % _BALANCE_TENURE)
            key = self._key()
            if key < best_key:
                best_key, best_set, stale = key, np.flatnonzero(self.inside), 0
            else:
                stale += 1
        return best_set


def _balance_in_pool(words: np.ndarray, code: np.ndarray, n: int, a: int, d: int) -> np.ndarray:
    """Re-balance the K words `code` (pairwise >= d) by tabu swaps with words of the sorted pool `words`.

    Pools larger than `_BALANCE_POOL_CAP` keep the words in conflict (closer than d) with the fewest
    words of `code`, as many as fit: the others cannot enter the code within a few moves.
    """
    k = code.size
    if words.size > _BALANCE_POOL_CAP:
        near = np.zeros(words.size, dtype=np.int64)
        for w in code:
            near += _popcount(words ^ w) < d
        fits = np.flatnonzero(np.cumsum(np.bincount(near)) <= _BALANCE_POOL_CAP)
        words = np.union1d(words[near <= max(int(fits[-1]) if fits.size else 0, 1)], code)
    ideal = _ideal_spread(k, n, a)
    search = _TabuSwapSearch(words, np.searchsorted(words, code), n, a, d, pairwise_ok=False)
    max_iter = max(_BALANCE_MIN_MOVES, min(_BALANCE_MAX_MOVES, _BALANCE_WORK // (words.size * n)))
    chosen = words[search.run(ideal, max_iter, patience=max_iter // 4)]
    return np.sort(_shift_balance(chosen, n, d, ideal))


def _improve(k: int, n: int, a: int, high: int, low: int, seed: int,
             max_spread: Optional[int]) -> Tuple[Optional[np.ndarray], int]:
    """Highest d in [low, high] at which the tabu search finds a code with S_max - S_min <= max_spread
    (None: any); the best balance of up to `_BALANCE_TRIES` such codes. (None, 0) if no level qualifies."""
    if math.comb(n, a) > _TABU_POOL_LIMIT:
        return None, 0
    pool = _exhaustive_pool(n, a).words
    ideal = _ideal_spread(k, n, a)
    max_tries = max(1, min(_BALANCE_TRIES, _BALANCE_TRY_WORK // (min(pool.size, _BALANCE_POOL_CAP) * n)))
    for d in range(high - high % 2, low - 1, -2):
        best: Optional[Tuple[Tuple[int, int], np.ndarray]] = None
        for tries, code in enumerate(_tabu_codes(pool, k, n, a, d, seed), 1):
            words = _balance_in_pool(pool, code, n, a, d)
            sums = _words_to_bits(words, n).sum(axis=0).astype(np.int64)
            key = (int(sums.max() - sums.min()), int(((n * sums - k * a) ** 2).sum()))
            if best is None or key < best[0]:
                best = (key, words)
            if key[0] <= ideal or tries >= max_tries:
                break
        if best is not None and (max_spread is None or best[0][0] <= max_spread):
            return best[1], d
    return None, 0


# ---------------------------------------------------------------------------------------------------------
# Public generation API
# ---------------------------------------------------------------------------------------------------------
def _scheme_from_words(words: np.ndarray, n: int, name: Optional[str] = None) -> CodingScheme:
    return CodingScheme(_words_to_bits(np.sort(words), n), name)


def _plain_scheme(k: int, n: int) -> CodingScheme:
    """The r = N/N block: every class uses every subNN."""
    return CodingScheme(np.ones((k, n), dtype=np.uint8), num_active=n)


def _search(k: int, n: int, a: int, d_low: int, seed: int) -> Tuple[Optional[np.ndarray], int]:
    """Highest d >= d_low with a K-word code at the ideal balance (else best spread); (words, d)."""
    ideal = _ideal_spread(k, n, a)
    pools = _candidate_pools(n, a, seed)
    best: Optional[Tuple[Tuple[int, int], np.ndarray, int]] = None
    for d in range(_distance_upper_bound(k, n, a), d_low - 1, -2):
        if best is not None and best[2] - d > 2 * _BALANCE_FALLBACK_STEPS:
            break
        for pool in pools:
            if pool.words.size < k:
                continue
            code = _code_for_distance(pool, d, limit=_LEXICODE_FACTOR * k + 1024)
            if code.size < k:
                continue
            words = _select_balanced(pool, code, k, n, a, d)
            sums = _words_to_bits(words, n).sum(axis=0)
            key = (int(sums.max() - sums.min()), -d)
            if best is None or key < best[0]:
                best = (key, words, d)
            if key[0] <= ideal:
                return words, d
    return (best[1], best[2]) if best else (None, 0)


def generate_scheme(
        num_classes: int,
        num_subnns: int,
        num_active: int,
        min_distance: Optional[int] = None,
        seed: int = 0,
) -> CodingScheme:
    """Generate a (K, N) scheme with N_act ones per codeword (rules A, B, C; see the module docstring).

    Args:
        num_classes: K, number of codewords (classes).
        num_subnns: N, codeword length (subNNs per block), at most 64.
        num_active: N_act, ones per codeword (r = N_act / N).
        min_distance: None for the best distance the generator reaches (the tabu search runs where the
            lexicode search stops below the upper bound); an int to require at least that: the first
            scheme reaching it is returned (ValueError naming the best reached otherwise).
        seed: seed of the pseudo-random candidate pool (used only when C(N, N_act) is large) and of the
            tabu search.
    """
    k, n, a = int(num_classes), int(num_subnns), int(num_active)
    _check_args(k, n, a)
    if a == n:
        return _plain_scheme(k, n)
    if k == 0:
        return CodingScheme(np.zeros((0, n), dtype=np.uint8), num_active=a)
    if k == 1:
        return _scheme_from_words(_unrank(np.arange(1), n, a), n)
    bound = _distance_upper_bound(k, n, a)
    want = 2 if min_distance is None else max(int(min_distance), 2)
    if want <= bound:
        words, _ = _generate(k, n, a, want, bound if min_distance is None else want, bound, seed,
                             explicit=min_distance is not None)
        if words is not None:
            return _scheme_from_words(words, n)
    reached = _generate(k, n, a, 2, bound, min(want, bound + 2) - 2, seed, explicit=True)[1]
    raise ValueError(
        f'min_distance = {want} cannot be reached for K = {k}, N = {n}, N_act = {a}: the best the generator '
        f'reaches is {reached} (upper bound {bound}). Ask for min_distance <= {reached}, or use a larger N.')


def _generate(k: int, n: int, a: int, low: int, goal: int, high: int, seed: int,
              explicit: bool) -> Tuple[Optional[np.ndarray], int]:
    """K words pairwise >= low apart, or (None, 0); (words, d).

    The lexicode search (`_search`, Algorithm 1) first; when its distance is below `goal`, the tabu search
    (`_improve`) tries every d from `high` down to just above it and wins if it reaches one, with a spread
    S_max - S_min at most `_MAX_EXTRA_SPREAD` above the ideal unless the distance was `explicit`ly asked for.
    """
    words, d = _search(k, n, a, low, seed)
    if d < goal:
        max_spread = None if explicit else _ideal_spread(k, n, a) + _MAX_EXTRA_SPREAD
        better, d2 = _improve(k, n, a, high, max(low, d + 2), seed, max_spread)
        if better is not None:
            words, d = better, d2
    return words, d


# ---------------------------------------------------------------------------------------------------------
# Built-in schemes (frozen JSON files) and the cached lookup
# ---------------------------------------------------------------------------------------------------------
# Table 4 of the paper (CIFAR-10, class order of torchvision's CIFAR10): r = 5/10 and r = 3/10.
_TABLE4 = {
    'cifar10_r5_10': ('1010100011', '0101010101', '1101100010', '0011001101', '1010010101',
                      '1001001110', '1011101000', '0100011110', '0110111000', '0100110011'),
    'cifar10_r3_10': ('1001001000', '0110001000', '1010000001', '0000001110', '0001010100',
                      '0010100100', '0000110010', '0100010001', '0001100001', '1100000010'),
}
# Generated built-ins: name -> generate_scheme arguments (recorded in the JSON file, re-checked by tests).
_GENERATED = {
    'cifar100_r8_20': dict(num_classes=100, num_subnns=20, num_active=8, min_distance=8, seed=0),
    'cifar100_r4_20': dict(num_classes=100, num_subnns=20, num_active=4, min_distance=4, seed=0),
    'imagenet_r16_32': dict(num_classes=1000, num_subnns=32, num_active=16, min_distance=12, seed=0),
    'imagenet_r8_32': dict(num_classes=1000, num_subnns=32, num_active=8, min_distance=6, seed=0),
}


def _builtin_record(name: str) -> Dict[str, Any]:
    """The JSON content of built-in `name`, from Table 4 or from the generator."""
    if name in _TABLE4:
        scheme = CodingScheme.from_codewords(_TABLE4[name], name, CIFAR10_CLASSES)
        origin = dict(source='Table 4 of arXiv:2202.05343 (Coded ResNeXt)', generator=None)
    else:
        args = _GENERATED[name]
        scheme = CodingScheme.from_codewords(generate_scheme(**args).codewords, name)
        origin = dict(source='timm_coded.codes.generate_scheme', generator=args)
    record = scheme.to_json()
    record.update(origin, quality=scheme.quality(), fingerprint=scheme.fingerprint())
    return record


def _write_builtins(directory: Optional[str] = None) -> None:
    """Regenerate the frozen files: ``python -c "from timm_coded.codes import _write_builtins; _write_builtins()"``."""
    import pathlib
    out = pathlib.Path(directory or pathlib.Path(__file__).with_name('schemes'))
    out.mkdir(parents=True, exist_ok=True)
    for name in (*_TABLE4, *_GENERATED):
        text = json.dumps(_builtin_record(name), indent=1)
        (out / f'{name}.json').write_text(text + '\n', encoding='utf-8')


def _schemes_dir():
    from importlib import resources
    return resources.files(__package__ or 'timm_coded').joinpath('schemes')


def _load_builtins() -> Dict[str, CodingScheme]:
    out = {}
    for entry in sorted(_schemes_dir().iterdir(), key=lambda p: p.name):
        if entry.name.endswith('.json'):
            data = json.loads(entry.read_text(encoding='utf-8'))
            scheme = CodingScheme.from_json(data)
            if data.get('fingerprint') not in (None, scheme.fingerprint()):
                raise ValueError(f'Built-in scheme file {entry.name} is corrupt: fingerprint mismatch.')
            out[scheme.name] = scheme
    return out


@functools.lru_cache(maxsize=None)
def _builtins() -> Dict[str, CodingScheme]:
    return _load_builtins()


def builtin_names() -> List[str]:
    """Names of the frozen built-in schemes."""
    return sorted(_builtins())


def _builtin_for(k: int, n: int, a: int) -> Optional[CodingScheme]:
    for scheme in _builtins().values():
        if (scheme.num_classes, scheme.num_subnns, scheme.num_active) == (k, n, a):
            return scheme
    return None


@functools.lru_cache(maxsize=None)
def get_scheme(num_classes: int, num_subnns: int, num_active: int) -> CodingScheme:
    """The scheme a model uses for (K, N, N_act): built-in if one matches, else generated (cached)."""
    k, n, a = int(num_classes), int(num_subnns), int(num_active)
    _check_args(k, n, a, warn=False)  # generate_scheme warns about a fractional r*K
    if a == n:
        return _plain_scheme(k, n)
    return _builtin_for(k, n, a) or generate_scheme(k, n, a)


def __getattr__(name: str):  # PEP 562: BUILTIN_SCHEMES is read from disk on first access only
    if name == 'BUILTIN_SCHEMES':
        return dict(_builtins())
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


# ---------------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------------
def _report(scheme: CodingScheme, seconds: float) -> Dict[str, Any]:
    out = scheme.to_json()
    out.update(min_distance=scheme.min_distance, column_sums=[int(s) for s in scheme.column_sums],
               s_min=scheme.s_min, s_max=scheme.s_max, seconds=round(seconds, 4),
               fingerprint=scheme.fingerprint())
    return out


def _print_text(scheme: CodingScheme, seconds: float) -> None:
    label = f' {scheme.name}' if scheme.name else ''
    print(f'# coding scheme{label}: K={scheme.num_classes} N={scheme.num_subnns} N_act={scheme.num_active} '
          f'(r={scheme.ratio_str})')
    names = scheme.class_names or ('',) * scheme.num_classes
    for word, cls in zip(scheme.to_strings(), names):
        print(f'{word}  {cls}'.rstrip())
    print(f'# min distance {scheme.min_distance}, S_min {scheme.s_min}, S_max {scheme.s_max}, '
          f'{seconds:.3f} s')


def _parse_cli(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog='python -m timm_coded.codes', description=(
        'Generate or show a Coded ResNeXt coding scheme (K classes x N subNNs, N_act ones per codeword).'))
    p.add_argument('--classes', '-K', type=int, help='number of classes K')
    p.add_argument('--subnns', '-N', type=int, help='number of subNNs N (codeword length)')
    p.add_argument('--active', '-A', type=int, help='active subNNs per class N_act')
    p.add_argument('--min-distance', type=int, default=None, help='required minimum Hamming distance')
    p.add_argument('--seed', type=int, default=0, help='seed of the pseudo-random pool (large N only)')
    p.add_argument('--builtin', metavar='NAME', help='print a built-in scheme instead')
    p.add_argument('--list', action='store_true', help='list the built-in schemes')
    p.add_argument('--json', action='store_true', help='print one JSON object instead of text')
    args = p.parse_args(argv)
    if not (args.list or args.builtin) and None in (args.classes, args.subnns, args.active):
        p.error('give --classes, --subnns and --active (or --builtin NAME, or --list)')
    return args


def _cli_list(as_json: bool) -> None:
    rows = [dict(name=s.name, K=s.num_classes, N=s.num_subnns, N_act=s.num_active,
                 min_distance=s.min_distance, s_min=s.s_min, s_max=s.s_max) for s in _builtins().values()]
    if as_json:
        print(json.dumps(rows))
        return
    for r in rows:
        print(f"{r['name']:<18} K={r['K']:<5} N={r['N']:<3} N_act={r['N_act']:<3} "
              f"min_distance={r['min_distance']:<3} S_min={r['s_min']} S_max={r['s_max']}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parse_cli(argv)
    try:
        if args.list:
            _cli_list(args.json)
            return 0
        t0 = time.perf_counter()
        if args.builtin:
            if args.builtin not in _builtins():
                raise ValueError(f'No built-in scheme {args.builtin!r}; available: {", ".join(builtin_names())}.')
            scheme = _builtins()[args.builtin]
        else:
            scheme = generate_scheme(args.classes, args.subnns, args.active, args.min_distance, args.seed)
        seconds = time.perf_counter() - t0
    except ValueError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(_report(scheme, seconds)))
    else:
        _print_text(scheme, seconds)
    return 0


if __name__ == '__main__':
    sys.exit(main())
