""" Rule B: choose K words, pairwise >= d apart, whose column sums are as equal as possible (Algorithm 1, lines
19-27, heuristically): a greedy pick of the words on the least used columns, a swap local search that keeps every
distance >= d, and single-1 moves from the fullest to the emptiest column. `_balance_in_pool` runs the swap search
as a tabu search (uphill moves too) after the tabu search of `tabu.py`.
"""
from typing import Tuple

import numpy as np

from .pools import _Pool, _popcount, _shifts, _words_to_bits
from .scheme import _ideal_spread

_BALANCE_POOL_CAP = 1 << 15   # larger pools are cut down to this many words before the tabu balancing


def _greedy_pick(words: np.ndarray, k: int) -> np.ndarray:
    """Indices of k words, each time the one whose columns are least used so far (ties: lowest index)."""
    cost = np.zeros(words.size)  # sum over a word's columns of the current column sums; inf once taken
    picked = np.empty(k, dtype=np.int64)
    for step in range(k):
        i = picked[step] = np.argmin(cost)
        cost += _popcount(words & words[i])
        cost[i] = np.inf
    return picked


class _SwapSearch:
    """Swap local search on the column sums that keeps the minimum distance >= d.

    The state is a set S of K word indices into `words`. A move swaps u in S for v outside S; it is legal
    when v is >= d from every word of S except possibly u (tracked by `conf_cnt` / `conf_sum`, the number
    and index sum of the chosen words closer than d). The objective is sum_n (N*S_n - K*N_act)^2 (integer,
    so the search is exactly reproducible); a move changes it by N^2*d_H(u,v) + 2N*(e.v - e.u).
    """

    def __init__(self, words: np.ndarray, chosen: np.ndarray, n: int, a: int, d: int, pairwise_ok: bool):
        self.words, self.n, self.d = words, n, d
        self.bits = _words_to_bits(words, n).astype(np.int64)
        self.inside = np.zeros(words.size, dtype=bool)
        self.inside[chosen] = True
        self.sums = self.bits[chosen].sum(axis=0)
        self.target = chosen.size * a  # N * (ideal column sum)
        self.conf_cnt, self.conf_sum = np.zeros((2, words.size), dtype=np.int64)
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

    def _best_move(self, it: int, top: int = 48) -> Tuple[int, int, int]:
        """(delta, u, v) of the best legal non-tabu move; delta is N * (change of the objective)."""
        n = self.n
        e = n * self.sums - self.target
        lin = self.bits @ e
        ok_v = ~self.inside & (self.tabu < it)
        best = (np.iinfo(np.int64).max, -1, -1)
        if self.track:  # v conflicts with exactly one chosen word u: swapping them keeps distance >= d
            v1 = np.flatnonzero(ok_v & (self.conf_cnt == 1))
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

    def run(self, ideal: int, max_iter: int, patience: int = 200, uphill: bool = False) -> np.ndarray:
        """Improve until the spread is `ideal` or no progress; the best chosen indices met. A descent takes only
        moves that do not worsen the objective; with `uphill` (a tabu search) the best legal move is taken even
        uphill, to leave local minima."""
        best_key, best_set, stale = self._key(), np.flatnonzero(self.inside), 0
        for it in range(max_iter):
            if (best_key if uphill else self._key())[0] <= ideal or stale > patience:
                break
            delta, u, v = self._best_move(it)
            if u < 0 or (delta > 0 and not uphill):
                break
            self.inside[u], self.inside[v] = False, True
            self.sums += self.bits[v] - self.bits[u]
            if self.track:
                self._conflicts(u, -1)
                self._conflicts(v, +1)
            self.tabu[u] = self.tabu[v] = it + (5 + it % 5 if uphill else 7 if delta == 0 else 0)  # tenure
            key = self._key()
            if key < best_key:
                best_key, best_set, stale = key, np.flatnonzero(self.inside), 0
            else:
                stale += 1
        return best_set

    def _key(self) -> Tuple[int, int]:
        e = self.n * self.sums - self.target
        return int(self.sums.max() - self.sums.min()), int((e * e).sum())


def _shift_balance(words: np.ndarray, n: int, d: int, ideal: int, budget: int = 1 << 26) -> np.ndarray:
    """Move single 1s from the fullest to the emptiest columns while every distance stays >= d.

    Works on the chosen words directly (no pool), so it also balances schemes drawn from sparse pools.
    A move of a 1 from column i to column j with S_i - S_j >= 2 strictly lowers sum_n S_n^2.
    """
    words = words.copy()
    sums = _words_to_bits(words, n).sum(axis=0).astype(np.int64)
    shifts = _shifts(n)
    while sums.max() - sums.min() > ideal and budget > 0:
        for i, j in ((i, j) for i in np.argsort(-sums, kind='stable') for j in np.argsort(sums, kind='stable')
                     if sums[i] - sums[j] >= 2):  # the fullest column first, then the emptiest
            if budget <= 0:
                break
            bit_i, bit_j = np.uint64(1) << shifts[i], np.uint64(1) << shifts[j]
            src = np.flatnonzero(((words & bit_i) != 0) & ((words & bit_j) == 0))
            cand = words[src] ^ (bit_i | bit_j)
            dist = _popcount(cand[:, None] ^ words[None, :])
            dist[np.arange(src.size), src] = n  # the word being moved
            budget -= dist.size
            ok = np.flatnonzero(dist.min(axis=1) >= d)
            if ok.size:
                words[src[ok[0]]] = cand[ok[0]]
                sums[i] -= 1
                sums[j] += 1
                break
        else:
            break  # no move keeps the distance
    return words


def _swap_balance(words: np.ndarray, start: np.ndarray, n: int, a: int, d: int, pairwise_ok: bool,
                  max_iter: int, **run_args) -> np.ndarray:
    """`_SwapSearch` from the words `start` (a subset of the sorted `words`), then `_shift_balance`; sorted."""
    ideal = _ideal_spread(start.size, n, a)
    search = _SwapSearch(words, np.searchsorted(words, start), n, a, d, pairwise_ok)
    chosen = words[search.run(ideal, max_iter, **run_args)]
    return np.sort(_shift_balance(chosen, n, d, ideal))


def _select_balanced(pool: _Pool, code: np.ndarray, k: int, n: int, a: int, d: int) -> np.ndarray:
    """K words pairwise >= d apart with column sums as equal as possible (sorted uint64)."""
    cap = max(1 << 16, 8 * k)  # larger lexicodes are strided down to this many words, spread evenly
    start = strided = code if code.size <= cap else code[(np.arange(cap, dtype=np.int64) * code.size) // cap]
    if start.size > k:
        start = np.sort(start[_greedy_pick(start, k)])
    if pool.distance < d and pool.words.size * k <= 1 << 27:  # may swap in any pool word that keeps the distance
        words, pairwise_ok = pool.words, False
    else:
        words, pairwise_ok = np.union1d(strided, start), True
    max_iter = min(max(1000, 4 * k), max(64, (1 << 30) // (words.size * n)))
    return _swap_balance(words, start, n, a, d, pairwise_ok, max_iter)


def _balance_in_pool(words: np.ndarray, code: np.ndarray, n: int, a: int, d: int) -> np.ndarray:
    """Re-balance the K words `code` (pairwise >= d) by tabu swaps with words of the sorted pool `words`.

    Pools larger than `_BALANCE_POOL_CAP` keep the words in conflict (closer than d) with the fewest
    words of `code`, as many as fit: the others cannot enter the code within a few moves.
    """
    if words.size > _BALANCE_POOL_CAP:
        near = sum(_popcount(words ^ w) < d for w in code)  # conflicts with the code
        fits = np.flatnonzero(np.cumsum(np.bincount(near)) <= _BALANCE_POOL_CAP)
        words = np.union1d(words[near <= max(int(fits[-1]) if fits.size else 0, 1)], code)
    max_iter = max(100, min(4000, (1 << 26) // (words.size * n)))
    return _swap_balance(words, code, n, a, d, False, max_iter, patience=max_iter // 4, uphill=True)
