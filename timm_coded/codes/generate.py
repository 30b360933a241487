""" Generating coding schemes: Algorithm 1 of the paper (App. A), then the steps that make it scale and improve it.

Algorithm 1 (`algorithm1`, literal): list every codeword with N_act ones (rule A), sorted as integers; scan them
keeping each word at distance >= H_min from all kept ones (the set G, rule C); among all K-subsets of G return
one with the smallest column-sum spread S_max - S_min (rule B). Line 20 enumerates C(|G|, K) subsets, so the
literal form only runs for tiny tables. `generate_scheme` is the same construction, made tractable and better:

1. Pools (`pools.py`): all constant-weight words while there are few, else BCH-code words and a pseudo-random
   sample (Algorithm 1 line 11-12).
2. Lexicode (`pools._lexicode`, Algorithm 1 lines 13-16, vectorised) for d from the upper bound on H_min
   (`_distance_upper_bound`: pair averaging, Johnson) down to 2.
3. Balanced selection (`balance.py`, lines 19-27 heuristically): the first d whose K words reach the best
   possible balance wins (0, or 1 when r*K is fractional); at most two lower d are tried for balance.
4. Tabu search (`tabu.py`) when step 3 ends below the upper bound and C(N, N_act) is small enough: every higher d
   is tried, accepted with S_max - S_min at most `_MAX_EXTRA_SPREAD` above the ideal.

All arithmetic is on integers and ties break by index; the only randomness is seeded (splitmix64 for the pool,
PCG64's raw stream for the tabu search), so the same arguments give the same scheme on every machine.
Generation supports N <= 64 (one uint64 per codeword).
"""
import functools
import itertools
import math
import warnings
from typing import Optional, Tuple

import numpy as np

from .balance import _select_balanced
from .pools import _candidate_pools, _lexicode, _unrank, _words_to_bits
from .scheme import CodingScheme, _check_num_active, _ideal_spread
from .tabu import _improve

__all__ = ['algorithm1', 'generate_scheme']

_MAX_SUBNNS = 64       # generation packs a codeword into one uint64
_MAX_EXTRA_SPREAD = 2  # a higher distance is only taken with S_max - S_min <= ideal + 2 (rule B)


def algorithm1(num_classes: int, num_subnns: int, num_active: int, min_distance: int) -> Optional[CodingScheme]:
    """Algorithm 1 of the paper as printed (exponential in line 20: tiny tables only); None where |G| < K."""
    words = sorted(w for w in itertools.product((0, 1), repeat=num_subnns) if sum(w) == num_active)  # lines 11-12
    chosen = []                                                                               # line 13: G
    for w in words:                                                                           # lines 14-16
        if all(sum(a != b for a, b in zip(w, g)) >= min_distance for g in chosen):
            chosen.append(w)
    if len(chosen) < num_classes:                                                             # lines 17-18
        return None
    best, best_score = None, math.inf
    for subset in itertools.combinations(chosen, num_classes):                                # lines 19-26
        sums = np.sum(subset, axis=0)
        score = int(sums.max() - sums.min())                                                  # SCORE(C)
        if score < best_score:
            best, best_score = subset, score
            if score == 0:
                break
    return CodingScheme.from_codewords(np.array(best))                                        # line 27


@functools.lru_cache(maxsize=None)
def _johnson_bound(n: int, d: int, w: int) -> int:
    """Johnson's upper bound on A(n, d, w), the size of a constant-weight-w code of length n and distance d.

    The smaller of A(n, d, w) <= floor(n / w * A(n-1, d, w-1)), A(n, d, w) <= floor(n / (n-w) * A(n-1, d, w))
    and floor(delta n / (w^2 - w n + delta n)) (delta = d/2, positive denominator); A = 1 when w < delta and
    A = floor(n / w) when w = delta. Exact for e.g. A(10, 4, 3) = 13 and A(32, 16, 16) = 62.
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
    denom = w * w - w * n + delta * n  # Johnson's second bound, when positive
    return min(n * _johnson_bound(n - 1, d, w - 1) // w, n * _johnson_bound(n - 1, d, w) // (n - w),
               math.comb(n, w), delta * n // denom if denom > 0 else math.comb(n, w))


def _distance_upper_bound(k: int, n: int, a: int) -> int:
    """Even upper bound on H_min for K words (pair-averaging/Plotkin + Johnson)."""
    if k < 2:
        return n
    q, rem = divmod(k * a, n)  # most balanced column sums maximise the total pairwise distance
    total = rem * (q + 1) * (k - q - 1) + (n - rem) * q * (k - q)
    d = min(2 * min(a, n - a), (2 * total) // (k * (k - 1)))
    d -= d % 2
    while d > 2 and _johnson_bound(n, d, a) < k:
        d -= 2
    return max(d, 2)


def _check_args(k: int, n: int, a: int) -> None:
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
        n2 = next(m for m in itertools.count(n + 1) if math.comb(m, a) >= k)
        fix = f'Use a larger N (N = {n2} gives C({n2}, {a}) = {math.comb(n2, a)})'
        if math.comb(n, n // 2) >= k:
            fix += f' or an N_act closer to N/2 = {n / 2:g} (C({n}, {n // 2}) = {math.comb(n, n // 2)})'
        raise ValueError(f'Not enough distinct codewords: C(N, N_act) = C({n}, {a}) = {available} < K = {k} '
                         f'classes. {fix}.')
    if k and _ideal_spread(k, n, a):
        warnings.warn(
            f'r*K = {a}/{n} * {k} = {k * a / n:g} is not an integer, so the column sums cannot all be equal '
            f'(rule B, App. A); the best possible is S_max - S_min = 1.', stacklevel=3)


def _scheme_from_words(words: np.ndarray, n: int) -> CodingScheme:
    return CodingScheme(_words_to_bits(np.sort(words), n))


def _search(k: int, n: int, a: int, d_low: int, seed: int) -> Tuple[Optional[np.ndarray], int]:
    """Highest d >= d_low with a K-word code at the ideal balance (else best spread); (words, d)."""
    ideal = _ideal_spread(k, n, a)
    pools = _candidate_pools(n, a, seed)
    best: Optional[Tuple[Tuple[int, int], np.ndarray, int]] = None
    for d in range(_distance_upper_bound(k, n, a), d_low - 1, -2):
        if best is not None and best[2] - d > 4:  # trade at most two steps of distance for balance
            break
        for pool in pools:
            code = pool.words if pool.distance >= d else _lexicode(pool.words, d, 4 * k + 1024)
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


def generate_scheme(num_classes: int, num_subnns: int, num_active: int, min_distance: Optional[int] = None,
                    seed: int = 0) -> CodingScheme:
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
        return CodingScheme(np.ones((k, n), dtype=np.uint8), num_active=n)  # r = N/N: every class uses every subNN
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
    """(K words pairwise >= low apart, d) or (None, 0): `_search`, then if its d < goal the tabu search (`_improve`)
    for d from `high` down, its spread at most `_MAX_EXTRA_SPREAD` above the ideal unless d is `explicit`."""
    words, d = _search(k, n, a, low, seed)
    if d < goal:
        max_spread = None if explicit else _ideal_spread(k, n, a) + _MAX_EXTRA_SPREAD
        better, d2 = _improve(k, n, a, high, max(low, d + 2), seed, max_spread)
        if better is not None:
            words, d = better, d2
    return words, d

