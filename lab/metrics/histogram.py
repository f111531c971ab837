"""A bounded-memory latency histogram (HDR-style log-linear buckets).

Each power of two is split into 2**sub_bits linear buckets, so a reported
percentile is within 2**-(sub_bits+1) relative error of the true value
(0.39% at the default 7 bits) however many values are recorded. Values are
added in numpy batches.
"""

from __future__ import annotations

import math

import numpy as np


class LogHistogram:
    """Counts of positive values (seconds) in log-linear buckets, plus exact min/max."""

    def __init__(self, sub_bits: int = 7, min_exp: int = -24, max_exp: int = 20) -> None:
        self.sub_bits = sub_bits
        self.min_exp = min_exp
        self.max_exp = max_exp
        self._per_octave = 1 << sub_bits
        # bucket 0 holds zeros and values below 2**(min_exp-1)
        self.counts = np.zeros((max_exp - min_exp) * self._per_octave + 1, dtype=np.int64)
        self.total = 0
        self.max = 0.0
        self.min = math.inf
        self.sum = 0.0

    @property
    def relative_error(self) -> float:
        """Worst-case relative error of a reported percentile."""
        return 2.0 ** -(self.sub_bits + 1)

    def record_many(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        values = np.asarray(values, dtype=np.float64)
        self.counts += np.bincount(self._index(values), minlength=self.counts.size)
        self.total += int(values.size)
        self.max = max(self.max, float(values.max()))
        self.min = min(self.min, float(values.min()))
        self.sum += float(values.sum())

    def record(self, value: float) -> None:
        self.record_many(np.array([value]))

    def _index(self, values: np.ndarray) -> np.ndarray:
        mantissa, exponent = np.frexp(values)
        sub = ((mantissa - 0.5) * (2 * self._per_octave)).astype(np.int64)
        index = (exponent.astype(np.int64) - self.min_exp) * self._per_octave + sub + 1
        index[values <= 0] = 0
        return np.asarray(np.clip(index, 0, self.counts.size - 1))

    def midpoint(self, index: int) -> float:
        if index == 0:
            return 0.0
        octave, sub = divmod(index - 1, self._per_octave)
        mantissa = 0.5 + (sub + 0.5) / (2 * self._per_octave)
        return math.ldexp(mantissa, octave + self.min_exp)

    def percentile(self, q: float) -> float:
        """The q-th percentile (0-100); NaN when empty. q=100 is the exact maximum."""
        if self.total == 0:
            return math.nan
        if q >= 100:
            return self.max
        rank = max(1, math.ceil(q / 100.0 * self.total))
        index = int(np.searchsorted(np.cumsum(self.counts), rank))
        return min(max(self.midpoint(index), self.min), self.max)

    @property
    def mean(self) -> float:
        return self.sum / self.total if self.total else math.nan

    def merge(self, other: LogHistogram) -> None:
        if (other.sub_bits, other.min_exp, other.max_exp) != (
            self.sub_bits,
            self.min_exp,
            self.max_exp,
        ):
            raise ValueError("cannot merge histograms with different bucket layouts")
        self.counts += other.counts
        self.total += other.total
        self.max = max(self.max, other.max)
        self.min = min(self.min, other.min)
        self.sum += other.sum
