"""Reuse (LRU stack) distances: exact, with a Fenwick tree, or sampled with SHARDS.

The stack distance of a request is the number of distinct other keys requested
since the previous request of its key (0 for an immediate repeat; none for a
first request). An LRU cache of C objects hits a request exactly when its
distance is below C (Mattson et al., 1970), so the histogram of distances is
the LRU miss-ratio curve for every size at once.

Exact mode keeps, per key, the position of its last request, and a Fenwick
tree marking the positions that are no longer any key's last request: the
distance is the number of positions after the key's last one less the marked
ones, O(log n) per request. Positions are renumbered
(compacted) whenever the tree fills up, so its memory is O(distinct keys),
not O(requests). SHARDS (Waldspurger et al., FAST 2015), fixed rate R, tracks
only keys whose hash falls below R and scales their distances by 1/R: about R
of the work for a miss-ratio curve within about 0.01 (their figures) on large
traces.
"""

from __future__ import annotations

import numpy as np

from lab.tracefile.keymap import _mix

COLD = -1
"""The distance of a key's first request (no previous request: a compulsory miss)."""

_MIN_TREE = 1 << 16
_SHARDS_MODULUS = 1 << 24


class StackDistances:
    """Feed lab key ids in trace order; get each request's stack distance (COLD if first)."""

    def __init__(self) -> None:
        self._last: list[int] = []  # key id -> position of its last request, -1 if none
        self._dead: list[int] = [0] * (_MIN_TREE + 1)  # Fenwick tree of dead positions
        self._next = 0  # the position the next request takes
        self._deaths = 0  # positions in the tree that are no key's last request

    def feed(self, ids: np.ndarray) -> np.ndarray:
        """Every position before the current one is either some key's last request or
        dead (its key came back later), so the distinct keys after position p are the
        positions after it less the dead ones: one tree query and one tree update."""
        out = np.empty(ids.size, dtype=np.int64)
        last, dead = self._last, self._dead
        pos, deaths, size = self._next, self._deaths, len(self._dead) - 1
        for i, key in enumerate(ids.tolist()):
            if pos == size:
                self._next, self._deaths = pos, deaths
                self._compact()
                last, dead = self._last, self._dead
                pos, deaths, size = self._next, 0, len(self._dead) - 1
            if key >= len(last):
                last.extend([-1] * (key + 1 - len(last)))
            p = last[key]
            if p < 0:
                out[i] = COLD
            else:
                j, before = p + 1, 0  # dead positions <= p
                while j > 0:
                    before += dead[j]
                    j &= j - 1
                out[i] = pos - p - 1 - (deaths - before)
                j = p + 1
                while j <= size:
                    dead[j] += 1
                    j += j & -j
                deaths += 1
            last[key] = pos
            pos += 1
        self._next, self._deaths = pos, deaths
        return out

    def _compact(self) -> None:
        """Renumber the live last positions 0..live-1 (order kept), no dead ones left,
        in a tree sized 4x the live keys (so compactions are amortized O(1) a request)."""
        last = np.asarray(self._last, dtype=np.int64)
        keys = np.flatnonzero(last >= 0)
        order = keys[np.argsort(last[keys], kind="stable")]
        last[order] = np.arange(order.size)
        self._last = last.tolist()
        self._dead = [0] * (max(_MIN_TREE, 4 * order.size) + 1)
        self._next = int(order.size)
        self._deaths = 0


def shards_sample(ids: np.ndarray, rate: float) -> np.ndarray:
    """The requests SHARDS keeps at `rate`: those whose key's hash falls below the
    threshold (the same keys every time, so each kept key's reuse is seen whole)."""
    if rate >= 1.0:
        return np.ones(ids.size, dtype=bool)
    hashed = _mix(ids.astype(np.uint64)) % np.uint64(_SHARDS_MODULUS)
    return np.asarray(hashed < np.uint64(round(rate * _SHARDS_MODULUS)))


def log2_buckets(distances: np.ndarray) -> np.ndarray:
    """Bucket of each distance: 0 for 0, b for 2**(b-1) <= d < 2**b, -1 for COLD."""
    _, exponent = np.frexp(np.maximum(distances, 0).astype(np.float64))
    return np.where(distances < 0, -1, exponent).astype(np.int64)
