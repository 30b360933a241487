""" Rule C beyond the lexicode: a tabu search for K words pairwise >= d apart, for every d above what Algorithm 1
reached (e.g. 13 weight-3 words of length 10 at distance 4, where the lexicode packs 10).

A min-conflicts search on the graph joining words closer than d (`_ConflictSearch`), restarted from greedy
lexicodes of pseudo-random pool orders (`_search_orders`) after 100 luby(i) moves without progress, within a fixed
move budget per level; each code found is then re-balanced (`balance._balance_in_pool`). The only randomness is
numpy's PCG64 bit stream seeded with (seed, K, N, N_act, d), read through `random_raw`, which numpy keeps fixed.
"""
import math
from typing import Dict, Iterator, Optional, Tuple

import numpy as np

from .balance import _BALANCE_POOL_CAP, _balance_in_pool, _greedy_pick
from .pools import _lexicode, _popcount, _unrank, _words_to_bits
from .scheme import _ideal_spread

_TABU_POOL_LIMIT = 1 << 18   # the tabu search runs when C(N, N_act) <= this
_TABU_CACHE = 1 << 24        # K x pool size up to which the conflict rows of the chosen words are kept


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
        # scores stay below 2 * offset + K (a tabu word may be back inside)
        self.dtype, self.offset = (np.int16, 1 << 13) if k < 1 << 12 else (np.int32, 1 << 28)

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
        """Greedy start: the lexicode of the pool in `order`, cut at 2 K words (then the K words `_greedy_pick`
        chooses for balance), filled up with the least conflicting words."""
        self.rows: Dict[int, np.ndarray] = {}
        self.score = np.zeros(self.m, dtype=self.dtype)
        kept = np.searchsorted(self.words, _lexicode(self.words[order], self.d, 2 * self.k)).tolist()
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
        j = int(np.argmin(values[:start + 1]))  # values[start] >= values[i]: j < start when strictly smaller
        return j if values[j] < values[i] else i

    def _step(self, it: int, tabu_until: np.ndarray, best: int) -> None:
        """One move (`best`: the fewest conflicts of this restart, for the aspiration criterion)."""
        t = self.score[self.members].astype(np.int64) - self.offset
        pos = self._argmin_from(-t, _draw(self.stream, self.k))
        u = int(self.members[pos])
        near_u = self.rows.pop(u) if self.cache_rows else self._near(u)
        after = self.score - near_u  # conflicts of each outside word once u has left
        v = self._argmin_from(after, _draw(self.stream, self.m))
        if tabu_until[v] > it and self.conflicts - int(t[pos]) + int(after[v]) >= best:
            active = np.flatnonzero(tabu_until > it)
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

    def solutions(self, orders: Iterator[np.ndarray], budget: int) -> Iterator[np.ndarray]:
        """Sorted indices of K words pairwise >= d apart, one per success, until `budget` is spent (a move costs 1,
        a (re)start K). Restart i starts from the next order and gives up after 100 luby(i) moves without a new best."""
        spent = 0
        for restart, order in enumerate(orders):
            self._start(order)
            spent += self.k
            tabu_until = np.zeros(self.m, dtype=np.int64)
            best, since, limit = self.conflicts, 0, 100 * _luby(restart)
            while self.conflicts and spent < budget and since < limit:
                self._step(spent, tabu_until, best)
                spent += 1
                since += 1
                if self.conflicts < best:
                    best, since = self.conflicts, 0
            if not self.conflicts:
                yield np.sort(self.members)
            if spent >= budget:
                return


def _luby(i: int) -> int:
    """Term i (from 0) of Luby's sequence 1, 1, 2, 1, 1, 2, 4, 1, 1, 2, 1, 1, 2, 4, 8, ..."""
    k = (i + 1).bit_length()
    return 1 << (k - 1) if i + 2 == 1 << k else _luby(i + 1 - (1 << (k - 1)))


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


def _improve(k: int, n: int, a: int, high: int, low: int, seed: int,
             max_spread: Optional[int]) -> Tuple[Optional[np.ndarray], int]:
    """Highest d in [low, high] at which the tabu search finds a code with S_max - S_min <= max_spread
    (None: any); the best balance of up to 8 such codes. (None, 0) if no level qualifies."""
    if math.comb(n, a) > _TABU_POOL_LIMIT:
        return None, 0
    pool = _unrank(np.arange(math.comb(n, a)), n, a)  # every weight-a word
    ideal = _ideal_spread(k, n, a)
    budget = (1 << 28) // (pool.size + (1 << 15))  # moves per level: 8000 for N = 10, 1200 for C(20, 10)
    max_tries = max(1, min(8, (1 << 21) // (min(pool.size, _BALANCE_POOL_CAP) * n)))  # codes balanced per level
    for d in range(high - high % 2, low - 1, -2):
        best: Optional[Tuple[Tuple[int, int], np.ndarray]] = None
        search = _ConflictSearch(pool, k, d, _random_stream(seed, k, n, a, d, 1))
        orders = _search_orders(pool.size, seed, (k, n, a, d, 0))
        for tries, found in enumerate(search.solutions(orders, budget), 1):
            words = _balance_in_pool(pool, pool[found], n, a, d)
            sums = _words_to_bits(words, n).sum(axis=0).astype(np.int64)
            key = (int(sums.max() - sums.min()), int(((n * sums - k * a) ** 2).sum()))
            if best is None or key < best[0]:
                best = (key, words)
            if key[0] <= ideal or tries >= max_tries:
                break
        if best is not None and (max_spread is None or best[0][0] <= max_spread):
            return best[1], d
    return None, 0
