""" Candidate pools of constant-weight words (rule A), each in increasing integer order (Algorithm 1, line 12).

Words are uint64 integers; column 0 of a codeword is the most significant bit, so integer order is string order.
* all C(N, N_act) words when there are at most `_EXHAUSTIVE_LIMIT` of them (Algorithm 1 exactly);
* otherwise the weight-N_act words of (shortened) extended binary BCH codes of length 2^m, already pairwise at
  the code's minimum distance (the 1054 weight-16 words of the [32, 11, 12] code give H_min = 12 for ImageNet at
  r = 16/32), and a deterministic pseudo-random sample of words (splitmix64, independent of numpy's RNG).
"""
import functools
import math
from collections import namedtuple
from typing import List

import numpy as np

_EXHAUSTIVE_LIMIT = 1 << 19  # enumerate all C(N, N_act) words up to this many (C(20, 10) = 184756)


def _popcount(x: np.ndarray) -> np.ndarray:
    """Number of set bits of every uint64 element."""
    if hasattr(np, 'bitwise_count'):  # numpy >= 2.0
        return np.bitwise_count(x)
    b = np.ascontiguousarray(x, dtype=np.uint64).view(np.uint8).reshape(x.shape + (8,))
    return np.unpackbits(b, axis=-1).sum(axis=-1, dtype=np.uint8)


def _shifts(n: int) -> np.ndarray:
    """Bit position of each column: column 0 is the most significant bit."""
    return np.arange(n - 1, -1, -1, dtype=np.uint64)


def _words_to_bits(words: np.ndarray, n: int) -> np.ndarray:
    """(M,) uint64 words -> (M, n) uint8 0/1 table."""
    return ((words[:, None] >> _shifts(n)[None, :]) & np.uint64(1)).astype(np.uint8)


def _lexicode(words: np.ndarray, d: int, limit: int) -> np.ndarray:
    """Greedy code of minimum distance d: scan `words` in order, keep each word >= d from all kept (at most `limit`)."""
    kept, rest = [], words
    while rest.size and len(kept) < limit:
        kept.append(rest[0])
        rest = rest[1:][_popcount(rest[1:] ^ rest[0]) >= d]
    return np.array(kept, dtype=np.uint64)


_Pool = namedtuple('_Pool', 'words distance')  # sorted uint64 words, every two at least `distance` apart


def _unrank(ranks: np.ndarray, n: int, a: int) -> np.ndarray:
    """Colex ranks -> weight-a words; increasing ranks give increasing integers."""
    table = np.array([[math.comb(i, j) for j in range(a + 1)] for i in range(n + 1)], dtype=np.int64)
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


_PRIMITIVE_POLYS = {3: 0b1011, 4: 0b10011, 5: 0b100101, 6: 0b1000011}


@functools.lru_cache(maxsize=None)
def _bch_generators(m: int) -> List[int]:
    """Generator polynomials (bit masks) of the distinct narrow-sense binary BCH codes of length 2^m - 1.

    Designed distance delta: the product of the x + alpha^j over the cyclotomic cosets j of 1..delta-1,
    computed in GF(2^m) (exponential and logarithm tables on a primitive polynomial).
    """
    n = (1 << m) - 1
    exp = [1] * (2 * n)
    for j in range(1, 2 * n):
        x = exp[j - 1] << 1
        exp[j] = (x ^ _PRIMITIVE_POLYS[m]) if x >> m else x
    log = {exp[j]: j for j in range(n)}
    gens, poly, roots = [], [1], set()  # poly: GF(2^m) coefficients, lowest degree first
    for i in range(1, n):
        if i in roots:
            continue
        j = i
        while j not in roots:  # the new cyclotomic coset
            roots.add(j)
            nxt = [0] * (len(poly) + 1)  # poly * (x + alpha^j)
            for t, c in enumerate(poly):
                nxt[t + 1] ^= c
                if c:
                    nxt[t] ^= exp[log[c] + j]
            poly = nxt
            j = 2 * j % n
        gens.append(sum(c << t for t, c in enumerate(poly)))  # binary once whole cosets are in
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
        parity = (bin(g).count('1') & 1) << (length - 1)  # extension bit
        basis = _shortened_basis([(g << i) | parity for i in range(length - g.bit_length())], n)
        if len(basis) > 21 or not basis:  # enumerate at most 2^21 codewords
            continue
        code = _span(basis)
        weights = _popcount(code)
        words = np.sort(code[weights == a])
        if words.size:
            pools.append(_Pool(words, int(weights[1:].min())))  # eBCH[2^m, k] shortened to [n, len(basis)]
    return sorted(pools, key=lambda p: -p.distance)


def _candidate_pools(n: int, a: int, seed: int) -> List[_Pool]:
    """All pools for (N, N_act): exhaustive when small, else structured + pseudo-random."""
    if math.comb(n, a) <= _EXHAUSTIVE_LIMIT:
        return [_Pool(_unrank(np.arange(math.comb(n, a)), n, a), 2)]
    ranks = np.unique(_splitmix64(seed, 1 << 18) % np.uint64(math.comb(n, a))).astype(np.int64)  # 2^18 draws
    return _bch_pools(n, a) + [_Pool(_unrank(ranks, n, a), 2)]
