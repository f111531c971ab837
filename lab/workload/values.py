"""Each key's value size: a constant, or drawn once per key from a distribution.

A key's size is a pure function of (seed, key): a 64-bit hash of both (splitmix64 for
integer keys) becomes a uniform number in (0, 1), and the distribution's inverse CDF
turns it into bytes. Nothing is stored per key and nothing costs O(keyspace), so a
keyspace of 2**53 keys costs what one of ten does; and every backend, every strategy and
every app instance of a run gives a key the same size (the origin's rows, write-behind's
writes and the real servers' padded values all ask `ValueSizes`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from statistics import NormalDist

import numpy as np

from lab.core import Key
from lab.scenario import Keyspace, ValueSizeSpec, lognormal_sigma

MASK64 = (1 << 64) - 1
_INV_2_53 = 1.0 / (1 << 53)
_NORMAL = NormalDist()


def mix64(x: int) -> int:
    """splitmix64's finalizer: a bijection of 64-bit integers that scatters every bit."""
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & MASK64
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB & MASK64
    return x ^ (x >> 31)


def _salt(seed: int) -> int:
    digest = hashlib.blake2b(f"value_size:{seed}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class ValueSizes:
    """`sizes(key)` -> the key's value size in bytes, fixed for the seed."""

    def __init__(self, spec: int | ValueSizeSpec, seed: int = 0) -> None:
        self.spec = spec
        self.constant: int | None = spec if isinstance(spec, int) else None
        if isinstance(spec, ValueSizeSpec) and spec.distribution == "constant":
            assert spec.value is not None
            self.constant = min(max(spec.value, spec.min), spec.max)
        self._salt = _salt(seed)
        self._inverse = _inverse_cdf(spec) if isinstance(spec, ValueSizeSpec) else None

    def __call__(self, key: Key) -> int:
        if self.constant is not None:
            return self.constant
        return self.size_at(self.uniform(key))

    def uniform(self, key: Key) -> float:
        """The key's uniform number in (0, 1), from the seed and the key alone."""
        if isinstance(key, int):
            h = mix64((key + self._salt) & MASK64)
        else:
            digest = hashlib.blake2b(key.encode(), digest_size=8, key=b"%d" % self._salt)
            h = int.from_bytes(digest.digest(), "little")
        return ((h >> 11) + 0.5) * _INV_2_53

    def size_at(self, u: float) -> int:
        """The size at quantile `u`, rounded and clamped to the spec's min..max."""
        spec = self.spec
        assert isinstance(spec, ValueSizeSpec) and self._inverse is not None
        size = int(self._inverse(u) + 0.5)
        return spec.min if size < spec.min else spec.max if size > spec.max else size

    def array(self, keys: np.ndarray) -> np.ndarray:
        """The sizes of integer `keys` (int64), exactly as `self(key)` gives them."""
        if self.constant is not None:
            return np.full(keys.size, self.constant, dtype=np.int64)
        return np.fromiter((self(int(k)) for k in keys), dtype=np.int64, count=keys.size)

    @property
    def mean(self) -> float:
        """The mean size in bytes (exact for constants; before clamping otherwise)."""
        if self.constant is not None:
            return float(self.constant)
        assert isinstance(self.spec, ValueSizeSpec)
        return self.spec.mean_size

    @property
    def typical(self) -> int:
        """One size that stands for all (the constant, else the rounded mean)."""
        return self.constant if self.constant is not None else max(1, round(self.mean))


def _inverse_cdf(spec: ValueSizeSpec) -> Callable[[float], float]:
    """The distribution's quantile function, in bytes."""
    kind = spec.distribution
    if kind == "constant":
        value = float(spec.value or 0)
        return lambda u: value
    if kind == "exponential":
        mean = float(spec.mean or 0)
        return lambda u: -mean * math.log1p(-u)
    if kind == "uniform":
        low, high = float(spec.low or 0), float(spec.high or 0)
        return lambda u: low - 0.5 + u * (high - low + 1.0)  # whole bytes low..high, each alike
    assert spec.median is not None and spec.p99 is not None
    log_median, sigma = math.log(spec.median), lognormal_sigma(spec.median, spec.p99)
    return lambda u: math.exp(log_median + sigma * _NORMAL.inv_cdf(u))


def value_sizes(keyspace: Keyspace, seed: int) -> ValueSizes:
    """The run's value sizes (`keyspace.value_size` for the run's seed)."""
    if isinstance(keyspace.value_size, ValueSizes):  # a replayed trace's (workload/stream.py)
        return keyspace.value_size
    return ValueSizes(keyspace.value_size, seed)


def run_value_size(keyspace: Keyspace, seed: int) -> int | ValueSizes:
    """What the parts of a run get as `value_size`: the plain size when every value has
    it (the fast path), else the per-key `ValueSizes`."""
    sizes = value_sizes(keyspace, seed)
    return sizes.constant if sizes.constant is not None else sizes
