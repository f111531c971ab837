"""lab.metrics.histogram.LogHistogram: bounded relative error, exact max, merge, memory."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.metrics.histogram import LogHistogram

QUANTILES = [0.1, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99]


def _samples(kind: str, n: int = 200_000) -> np.ndarray:
    rng = np.random.default_rng(20240611)
    if kind == "lognormal":
        return rng.lognormal(mean=math.log(0.005), sigma=1.2, size=n)
    if kind == "exponential":
        return rng.exponential(0.002, size=n)
    if kind == "uniform":
        return rng.uniform(1e-4, 3.0, size=n)
    if kind == "wide":  # nanoseconds to ~20 minutes
        return np.exp(rng.uniform(math.log(1e-7), math.log(1200.0), size=n))
    raise AssertionError(kind)


@pytest.mark.parametrize("sub_bits", [7, 4])
@pytest.mark.parametrize("kind", ["lognormal", "exponential", "uniform", "wide"])
def test_percentiles_within_relative_error(kind: str, sub_bits: int) -> None:
    values = _samples(kind)
    h = LogHistogram(sub_bits=sub_bits)
    for chunk in np.array_split(values, 7):  # batches, as the recorder feeds it
        h.record_many(chunk)
    bound = h.relative_error * (1 + 1e-9)
    assert h.relative_error == 2.0 ** -(sub_bits + 1)
    for q in QUANTILES:
        exact = float(np.percentile(values, q, method="inverted_cdf"))
        got = h.percentile(q)
        assert abs(got - exact) <= bound * exact, (q, got, exact)


def test_default_error_is_under_half_a_percent() -> None:
    assert LogHistogram().relative_error == pytest.approx(0.0039, abs=1e-4)


@given(st.floats(min_value=1e-6, max_value=1000.0))
def test_any_single_value_is_reported_within_relative_error(value: float) -> None:
    # the median of (tiny, value, huge) is the midpoint of value's bucket, unclamped
    h = LogHistogram()
    h.record_many(np.array([value / 3, value, value * 3]))
    got = h.percentile(50)
    assert abs(got - value) <= h.relative_error * value * (1 + 1e-12)


def test_max_and_min_are_exact() -> None:
    values = _samples("lognormal", 50_000)
    h = LogHistogram()
    h.record_many(values)
    assert h.max == float(values.max())
    assert h.min == float(values.min())
    assert h.percentile(100) == float(values.max())
    assert h.percentile(0) == float(values.min())
    assert h.total == values.size
    assert h.mean == pytest.approx(float(values.mean()), rel=1e-12)


def test_single_value_is_exact() -> None:
    h = LogHistogram()
    h.record(0.00123)
    for q in (0, 50, 99, 100):
        assert h.percentile(q) == 0.00123


def test_empty_histogram_is_nan() -> None:
    h = LogHistogram()
    assert math.isnan(h.percentile(50))
    assert math.isnan(h.percentile(100))
    assert math.isnan(h.mean)
    h.record_many(np.array([]))
    assert h.total == 0
    assert math.isnan(h.percentile(99))


def test_merge_equals_recording_the_union() -> None:
    rng = np.random.default_rng(7)
    a_values = rng.lognormal(math.log(0.002), 1.0, size=30_000)
    b_values = rng.exponential(0.05, size=20_000)
    a, b, union = LogHistogram(), LogHistogram(), LogHistogram()
    a.record_many(a_values)
    b.record_many(b_values)
    union.record_many(np.concatenate([a_values, b_values]))
    a.merge(b)
    assert np.array_equal(a.counts, union.counts)
    assert a.total == union.total == 50_000
    assert a.max == union.max
    assert a.min == union.min
    assert a.sum == pytest.approx(union.sum, rel=1e-12)
    for q in [*QUANTILES, 100]:
        assert a.percentile(q) == union.percentile(q)


def test_merge_into_empty_and_of_empty() -> None:
    values = np.array([0.001, 0.002, 0.5])
    h = LogHistogram()
    h.record_many(values)
    empty = LogHistogram()
    empty.merge(h)
    assert empty.percentile(100) == 0.5
    assert empty.min == 0.001
    before = h.counts.copy()
    h.merge(LogHistogram())
    assert np.array_equal(h.counts, before)
    assert (h.total, h.min, h.max) == (3, 0.001, 0.5)


def test_merge_rejects_a_different_layout() -> None:
    with pytest.raises(ValueError, match="bucket layouts"):
        LogHistogram(sub_bits=7).merge(LogHistogram(sub_bits=4))


def test_memory_does_not_grow_with_values() -> None:
    h = LogHistogram()
    size, nbytes = h.counts.size, h.counts.nbytes
    h.record(0.001)
    assert (h.counts.size, h.counts.nbytes) == (size, nbytes)
    rng = np.random.default_rng(1)
    for _ in range(10):
        h.record_many(rng.lognormal(0.0, 3.0, size=100_000))
    assert (h.counts.size, h.counts.nbytes) == (size, nbytes)
    assert h.total == 1_000_001
    assert int(h.counts.sum()) == h.total
    assert size < 10_000


def test_zeros_are_counted() -> None:
    h = LogHistogram()
    h.record_many(np.zeros(300))
    h.record_many(np.full(700, 0.01))
    assert h.total == 1000
    assert h.min == 0.0
    assert h.percentile(10) == 0.0
    assert h.percentile(30) == 0.0
    assert h.percentile(31) == pytest.approx(0.01, rel=h.relative_error)
    assert h.percentile(100) == 0.01
    assert h.mean == pytest.approx(0.007)


def test_only_zeros() -> None:
    h = LogHistogram()
    h.record_many(np.zeros(10))
    assert h.percentile(50) == 0.0
    assert h.percentile(100) == 0.0
    assert h.mean == 0.0


def test_values_up_to_an_hour_keep_the_error_bound() -> None:
    h = LogHistogram()
    h.record_many(np.array([3000.0, 3500.0, 4000.0]))
    assert h.percentile(50) == pytest.approx(3500.0, rel=h.relative_error)
