"""Key choosers, vectorized: uniform, zipf(s), hotspot and latest.

Ranks are mapped to key ids through a fixed random permutation, so the hot
keys of a zipfian workload are spread over the cache nodes instead of all
hashing wherever keys 0, 1, 2 happen to land.
"""

from __future__ import annotations

import numpy as np

from lab.scenario import KeyChooser


def zipf_cdf(n: int, s: float) -> np.ndarray:
    """Cumulative probabilities of ranks 1..n under P(rank i) ~ 1 / i**s."""
    weights = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** s
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    return np.asarray(cdf)


def zipf_probabilities(n: int, s: float) -> np.ndarray:
    """P(rank i) for ranks 1..n (used by the theory checks)."""
    weights = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** s
    return np.asarray(weights / weights.sum())


class KeyGenerator:
    """Draws the key of each request in a chunk, given which requests are writes."""

    def __init__(self, spec: KeyChooser, keys: int, rng: np.random.Generator) -> None:
        self.spec = spec
        self.n = keys
        self.rng = rng
        self.permutation = rng.permutation(keys)
        kind = spec.distribution
        if kind in ("zipf", "latest"):
            self.cdf = zipf_cdf(keys, spec.s)
        if kind == "hotspot":
            self.hot = max(1, round(keys * spec.hot_fraction))
        if kind == "latest":
            # as after YCSB's load phase: keys were inserted in id order, newest last
            self.recent = np.arange(keys, dtype=np.int64)

    def _ranks(self, n: int) -> np.ndarray:
        """Zipf ranks 0..N-1 (0 = most popular)."""
        ranks = np.searchsorted(self.cdf, self.rng.random(n), side="right")
        return np.asarray(np.minimum(ranks, self.n - 1))

    def draw(self, is_write: np.ndarray) -> np.ndarray:
        n = is_write.size
        kind = self.spec.distribution
        if kind == "uniform":
            return self.rng.integers(0, self.n, n)
        if kind == "zipf":
            return np.asarray(self.permutation[self._ranks(n)])
        if kind == "hotspot":
            hot = self.rng.random(n) < self.spec.hot_share
            pick = np.where(
                hot,
                self.rng.integers(0, self.hot, n),
                self.rng.integers(self.hot, max(self.n, self.hot + 1), n),
            )
            return np.asarray(self.permutation[np.minimum(pick, self.n - 1)])
        return self._latest(is_write)

    def _latest(self, is_write: np.ndarray) -> np.ndarray:
        """Writes touch uniform keys; reads favour the most recently written (zipf by recency)."""
        n = is_write.size
        write_keys = self.rng.integers(0, self.n, int(is_write.sum()))
        history = np.concatenate([self.recent, write_keys])
        writes_before = np.cumsum(is_write) - is_write
        recency = self._ranks(n) + 1  # 1 = the most recent write
        position = len(self.recent) + writes_before - recency
        keys: np.ndarray = history[np.maximum(position, 0)]
        keys[is_write] = write_keys
        self.recent = history[-self.n :]
        return keys
