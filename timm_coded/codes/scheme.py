""" The coding-scheme type: a (K, N) binary table, one codeword per class (§3.2.1, App. A).

Row k is the codeword of class k, column n is subNN n, and a 1 means that subNN n works for class k. Rule A
(every codeword has exactly N_act ones) is enforced here; rules B (balanced column sums) and C (large minimum
Hamming distance) are what the generator optimises and what `CodingScheme.quality` reports.
"""
from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ['CodingScheme']


def _pairwise_min_distance(bits: np.ndarray) -> int:
    """Minimum Hamming distance over all pairs of rows of equal weight (rule A): 2 (N_act - most shared ones)."""
    k, n = bits.shape
    if k < 2:
        return n
    x = bits.astype(np.float32)  # BLAS, chunked; exact, every value is an integer below 2^24
    shared = 0
    for start in range(0, k, 512):
        common = x[start:start + 512] @ x.T
        np.fill_diagonal(common[:, start:], 0)  # a row with itself
        shared = max(shared, int(common.max()))
    return 2 * (int(bits[0].sum()) - shared)


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
    def from_codewords(cls, rows: Any, name: Optional[str] = None, class_names: Optional[Sequence[str]] = None, *,
                       num_active: Optional[int] = None) -> 'CodingScheme':
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
        rows = data['codewords'] or np.zeros((0, int(data['N'])), dtype=np.uint8)
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
    @functools.cached_property
    def min_distance(self) -> int:
        """H_min, the minimum pairwise Hamming distance (N when K < 2: there is no pair)."""
        return _pairwise_min_distance(self.codewords)

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
        return dict(num_classes=self.num_classes, num_subnns=self.num_subnns, num_active=self.num_active,
                    ratio=self.ratio_str, min_distance=self.min_distance, s_min=self.s_min, s_max=self.s_max,
                    spread=self.s_max - self.s_min,
                    ideal_spread=_ideal_spread(self.num_classes, self.num_subnns, self.num_active))

    # --- access -----------------------------------------------------------------------------------------
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
    rows = [r.strip() if isinstance(r, str) else r for r in rows]
    if not rows:
        raise ValueError('The coding table is empty; pass a (0, N) array (and num_active) for K = 0.')
    n = len(rows[0])
    i = next((i for i, r in enumerate(rows) if len(r) != n), None)
    if i is not None:
        raise ValueError(f'Ragged coding table: row {i} {rows[i]!r} has {len(rows[i])} entries, row 0 has {n}; '
                         f'every codeword needs one entry per subNN.')
    if not all(isinstance(r, str) for r in rows):
        return np.asarray(rows)
    for i, r in enumerate(rows):
        if set(r) - {'0', '1'}:
            raise ValueError(f'Codeword {i} {r!r} is not binary: use only the characters 0 and 1.')
    return np.array([[c == '1' for c in r] for r in rows], dtype=np.uint8).reshape(len(rows), n)


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
        _, first, counts = np.unique(bits, axis=0, return_index=True, return_counts=True)
        if weights[0] < n and (counts > 1).any():  # the all-ones plain block repeats its codeword
            dup_row = bits[first[np.flatnonzero(counts > 1)[0]]]
            idx = np.flatnonzero((bits == dup_row).all(axis=1))
            word = ''.join(str(int(b)) for b in dup_row)
            raise ValueError(f'Duplicate codewords: rows {int(idx[0])} and {int(idx[1])} are both {word}; each '
                             f'class needs a distinct codeword.')
    bits.setflags(write=False)
    return bits


def _check_num_active(n: int, num_active: int) -> None:
    if not 1 <= num_active <= n:
        raise ValueError(f'N_act = {num_active} is outside 1..N = 1..{n}: each codeword needs between 1 and '
                         f'N active subNNs; choose a ratio N_act/N with 0 < N_act <= N.')


def _ideal_spread(k: int, n: int, a: int) -> int:
    """Smallest achievable S_max - S_min: 0 if r*K = K*N_act/N is an integer, else 1 (App. A)."""
    return 0 if (k * a) % n == 0 else 1
