"""Key choosers, vectorized: uniform, zipf(s), hotspot and latest.

Ranks are mapped to key ids through a fixed random permutation, so the hot
keys of a zipfian workload are spread over the cache nodes instead of all
hashing wherever keys 0, 1, 2 happen to land.

Up to EXACT_KEYS keys the permutation is a table drawn by numpy and zipf
ranks are drawn by inverting the exact cumulative distribution (O(keys)
memory and set-up, the streams every result so far was made with). Above it
nothing may cost O(keys): the permutation is a keyed Feistel network with
cycle walking (a bijection computed per key) and zipf ranks come from
rejection-inversion sampling (Hörmann and Derflinger, 1996: exact, O(1) per
draw). Both give different random streams from the tables, hence the switch
at a fixed, documented size.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from lab.scenario import KeyChooser

EXACT_KEYS = 10_000_000
"""Keyspaces up to this size use the exact tables (byte-identical results with earlier
versions); larger ones use the closed forms."""


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


class RankSampler(Protocol):
    def __call__(self, n: int) -> np.ndarray:
        """`n` zipf ranks 0..keys-1 (0 = the most popular)."""
        ...


class TableZipf:
    """Inversion of the exact cdf: O(keys) memory, one uniform per draw."""

    def __init__(self, keys: int, s: float, rng: np.random.Generator) -> None:
        self.keys, self.rng = keys, rng
        self.cdf = zipf_cdf(keys, s)

    def __call__(self, n: int) -> np.ndarray:
        ranks = np.searchsorted(self.cdf, self.rng.random(n), side="right")
        return np.asarray(np.minimum(ranks, self.keys - 1))


def _log1p_over(t: np.ndarray) -> np.ndarray:
    """log(1 + t) / t, continuous at t = 0."""
    small = np.abs(t) < 1e-8
    safe = np.where(small, 1.0, t)
    return np.where(small, 1.0 - t * (0.5 - t / 3.0), np.log1p(safe) / safe)


def _expm1_over(t: np.ndarray) -> np.ndarray:
    """(exp(t) - 1) / t, continuous at t = 0."""
    small = np.abs(t) < 1e-8
    safe = np.where(small, 1.0, t)
    return np.where(small, 1.0 + t * (0.5 + t / 6.0), np.expm1(safe) / safe)


class RejectionInversionZipf:
    """Exact finite zipf ranks in O(1) memory and expected O(1) time per draw.

    Rejection-inversion (Hörmann and Derflinger, "Rejection-inversion to generate
    variates from monotone discrete distributions", 1996), as in Apache Commons RNG:
    invert the integral H of the hat h(x) = x**-s, round to the nearest rank k and
    accept when the uniform falls under rank k's share. Valid for every s > 0."""

    def __init__(self, keys: int, s: float, rng: np.random.Generator) -> None:
        self.keys, self.s, self.rng = keys, s, rng
        self.h_x1 = float(self._h_integral(np.array(1.5))) - 1.0
        self.h_n = float(self._h_integral(np.array(keys + 0.5)))
        two = np.array(2.0)
        self.squeeze = 2.0 - float(
            self._h_integral_inverse(self._h_integral(np.array(2.5)) - self._h(two))
        )

    def _h(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(np.exp(-self.s * np.log(x)))

    def _h_integral(self, x: np.ndarray) -> np.ndarray:
        """(x**(1-s) - 1) / (1-s); log(x) at s = 1."""
        log_x = np.log(x)
        return np.asarray(_expm1_over((1.0 - self.s) * log_x) * log_x)

    def _h_integral_inverse(self, y: np.ndarray) -> np.ndarray:
        t = np.maximum(y * (1.0 - self.s), -1.0)
        return np.asarray(np.exp(_log1p_over(t) * y))

    def __call__(self, n: int) -> np.ndarray:
        ranks = np.empty(n, dtype=np.int64)
        todo = np.arange(n)
        while todo.size:
            u = self.h_n + self.rng.random(todo.size) * (self.h_x1 - self.h_n)
            x = self._h_integral_inverse(u)
            k = np.clip(np.floor(x + 0.5), 1, self.keys)
            accept = (k - x <= self.squeeze) | (u >= self._h_integral(k + 0.5) - self._h(k))
            ranks[todo[accept]] = k[accept].astype(np.int64) - 1
            todo = todo[~accept]
        return ranks


class UniformRanks:
    """Zipf with s = 0 is uniform."""

    def __init__(self, keys: int, rng: np.random.Generator) -> None:
        self.keys, self.rng = keys, rng

    def __call__(self, n: int) -> np.ndarray:
        return self.rng.integers(0, self.keys, n)


def zipf_ranks(keys: int, s: float, rng: np.random.Generator, exact: bool) -> RankSampler:
    """The zipf rank sampler for a keyspace: the exact table up to EXACT_KEYS keys."""
    if exact:
        return TableZipf(keys, s, rng)
    if s == 0:
        return UniformRanks(keys, rng)
    return RejectionInversionZipf(keys, s, rng)


_MIX = (0xBF58476D1CE4E5B9, 0x94D049BB133111EB)
ROUNDS = 4


class FeistelPermutation:
    """A keyed bijection of 0..n-1 computed per key: a balanced Feistel network on the
    smallest even number of bits covering n, cycle-walked back into range (the
    domain is under 4n, so a few steps at most on average). Any round function
    gives a bijection of the bit domain; splitmix64's finalizer makes it look
    random."""

    def __init__(self, n: int, rng: np.random.Generator) -> None:
        self.n = n
        self.half = max(1, ((max(n - 1, 1)).bit_length() + 1) // 2)
        self.mask = np.uint64((1 << self.half) - 1)
        self.round_keys = rng.integers(0, 2**63, ROUNDS, dtype=np.uint64)

    def _round(self, right: np.ndarray, key: np.uint64) -> np.ndarray:
        z = right + key
        z = (z ^ (z >> np.uint64(30))) * np.uint64(_MIX[0])
        z = (z ^ (z >> np.uint64(27))) * np.uint64(_MIX[1])
        return np.asarray((z ^ (z >> np.uint64(31))) & self.mask)

    def _once(self, x: np.ndarray) -> np.ndarray:
        left, right = x >> np.uint64(self.half), x & self.mask
        for key in self.round_keys:
            left, right = right, left ^ self._round(right, key)
        return np.asarray((left << np.uint64(self.half)) | right)

    def __getitem__(self, ranks: np.ndarray) -> np.ndarray:
        x = self._once(np.asarray(ranks, dtype=np.uint64))
        outside = np.flatnonzero(x >= np.uint64(self.n))
        while outside.size:
            x[outside] = self._once(x[outside])
            outside = outside[x[outside] >= np.uint64(self.n)]
        return x.astype(np.int64)


class Permutation(Protocol):
    def __getitem__(self, ranks: np.ndarray) -> np.ndarray: ...


class WriteHistory:
    """The `latest` chooser's history: keys 0..n-1 "inserted" in id order, then every
    write. A read looks back at most n entries (recency ranks are below n), so the
    inserted part stays implicit and older writes are dropped: memory
    O(min(keys, writes) + chunk), O(chunk) per chunk."""

    def __init__(self, keys: int) -> None:
        self.keys = keys
        self.length = keys  # entries so far, the implicit inserted ones included
        self._buffer = np.empty(0, dtype=np.int64)
        self._first = keys  # history index of _buffer[0]

    def append(self, writes: np.ndarray) -> None:
        """Add a chunk's writes, keeping the `keys` entries before them for its reads."""
        keep_from = max(self.keys, self.length - self.keys)
        kept = self._buffer[keep_from - self._first :]
        self._buffer = np.concatenate([kept, writes])
        self._first = keep_from
        self.length += writes.size

    def at(self, index: np.ndarray) -> np.ndarray:
        """Entries at history indexes (none older than `keys` before the last append)."""
        out = np.asarray(index, dtype=np.int64).copy()
        written = out >= self.keys
        out[written] = self._buffer[out[written] - self._first]
        return out


class KeyGenerator:
    """Draws the key of each request in a chunk, given which requests are writes."""

    def __init__(self, spec: KeyChooser, keys: int, rng: np.random.Generator) -> None:
        self.spec = spec
        self.n = keys
        self.rng = rng
        exact = keys <= EXACT_KEYS
        self.permutation: Permutation = (
            rng.permutation(keys) if exact else FeistelPermutation(keys, rng)
        )
        kind = spec.distribution
        if kind in ("zipf", "latest"):
            self._ranks: RankSampler = zipf_ranks(keys, spec.s, rng, exact)
        if kind == "hotspot":
            self.hot = max(1, round(keys * spec.hot_fraction))
        if kind == "latest":
            # as after YCSB's load phase: keys were inserted in id order, newest last
            self.history = WriteHistory(keys)

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
        writes_before = np.cumsum(is_write) - is_write
        recency = self._ranks(n) + 1  # 1 = the most recent write
        start = self.history.length
        self.history.append(write_keys)
        keys = self.history.at(start + writes_before - recency)
        keys[is_write] = write_keys
        return keys
