"""Trace statistics against independent references: exact LRU loops, direct counts, and
generated Zipf traces of known exponent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lab.trace import reuse
from lab.trace.reuse import COLD, StackDistances
from lab.trace.stats import trace_stats
from lab.tracefile.spec import TraceError, TraceSpec
from tests.trace.refs import (
    lru_misses_by_bytes,
    lru_misses_by_count,
    write_csv,
    write_oracle,
    zipf_keys,
)


def naive_stack_distances(keys: list[int]) -> list[int]:
    """Mattson's stack, as a list: the depth of the key, then move it to the top."""
    stack: list[int] = []
    out = []
    for key in keys:
        if key in stack:
            depth = stack.index(key)
            out.append(depth)
            del stack[depth]
        else:
            out.append(COLD)
        stack.insert(0, key)
    return out


def test_stack_distances_match_the_naive_stack_through_compactions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reuse, "_MIN_TREE", 8)  # compact every few requests
    rng = np.random.default_rng(5)
    for _ in range(40):
        keys = rng.integers(0, int(rng.integers(1, 50)), int(rng.integers(1, 300)))
        distances = StackDistances()
        parts = np.array_split(keys, int(rng.integers(1, 6)))
        got = np.concatenate([distances.feed(p) for p in parts])
        assert got.tolist() == naive_stack_distances(keys.tolist())


def zipf_oracle(
    tmp_path: Path, n: int, keys: int, s: float, seed: int, sizes: bool = False
) -> Path:
    rng = np.random.default_rng(seed)
    ids = zipf_keys(rng, keys, s, n)
    size = rng.integers(1, 5000, keys)[ids] if sizes else np.full(n, 100)
    return write_oracle(tmp_path / "z.oracleGeneral.bin", np.arange(n) // 100, ids, size)


def test_reuse_histogram_gives_the_exact_lru_miss_ratio_by_count(tmp_path: Path) -> None:
    path = zipf_oracle(tmp_path, 20_000, 2000, 0.9, seed=6)
    stats = trace_stats(TraceSpec(path=path), chunk=3000)
    ids = np.fromfile(path, dtype=[("t", "<u4"), ("id", "<u8"), ("s", "<u4"), ("n", "<i8")])["id"]
    for capacity in (0, 1, 2, 10, 100, 333, 1000, 1999, 5000):
        misses = sum(lru_misses_by_count(ids.tolist(), capacity))
        assert stats.reuse.lru_miss_ratio(capacity) * stats.requests == pytest.approx(misses)
    # the cumulative share through bucket a-b is the LRU hit ratio at b+1 objects
    for label, _, cumulative in stats.reuse.buckets()[:-1]:
        capacity = int(label.split("-")[-1]) + 1
        assert cumulative == pytest.approx(1 - stats.reuse.lru_miss_ratio(capacity))


def test_shards_estimates_the_miss_ratio_curve_from_a_sample(tmp_path: Path) -> None:
    path = zipf_oracle(tmp_path, 200_000, 20_000, 0.9, seed=7)
    exact = trace_stats(TraceSpec(path=path))
    sampled = trace_stats(TraceSpec(path=path), sample_rate=0.1)
    assert sampled.reuse.sampled < 0.2 * exact.requests
    # sampling error shrinks with the cache size: at 3000 objects 300 sampled keys fit
    for capacity in (3000, 10_000, 20_000):
        assert sampled.reuse.lru_miss_ratio(capacity) == pytest.approx(
            exact.reuse.lru_miss_ratio(capacity), abs=0.01
        )


def test_lru_by_bytes_agrees_with_lru_by_count_when_sizes_are_equal(tmp_path: Path) -> None:
    """The two independent references and the reuse histogram tell one story."""
    path = zipf_oracle(tmp_path, 10_000, 1000, 1.0, seed=8)
    stats = trace_stats(TraceSpec(path=path))
    records = np.fromfile(path, dtype=[("t", "<u4"), ("id", "<u8"), ("s", "<u4"), ("n", "<i8")])
    ids, sizes = records["id"].tolist(), records["s"].tolist()
    for objects in (1, 50, 400):
        by_bytes = lru_misses_by_bytes(ids, sizes, objects * 100)
        assert by_bytes == lru_misses_by_count(ids, objects)
        assert sum(by_bytes) == round(stats.reuse.lru_miss_ratio(objects) * stats.requests)


def test_counts_bytes_and_one_hit_wonders_match_direct_computation(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    n = 30_000
    keys = zipf_keys(rng, 5000, 0.7, n)
    sizes = rng.integers(1, 1000, n)  # sizes change between requests of one key
    writes = rng.random(n) < 0.2
    rows = [
        (i * 0.01, k, "set" if w else "get", s)
        for i, (k, w, s) in enumerate(zip(keys, writes, sizes, strict=True))
    ]
    path = write_csv(tmp_path / "t.csv", ["time", "key", "op", "size"], rows)
    stats = trace_stats(TraceSpec(path=path), chunk=4096)
    unique, counts = np.unique(keys, return_counts=True)
    last_size = {int(k): int(s) for k, s in zip(keys, sizes, strict=True)}  # later ones win
    assert stats.requests == n and stats.writes == int(writes.sum())
    assert stats.unique_keys == unique.size
    assert stats.one_hit_keys == int((counts == 1).sum())
    assert stats.request_bytes == int(sizes.sum())
    assert stats.working_set_bytes == sum(last_size.values())
    assert stats.span == pytest.approx((n - 1) * 0.01)
    summary = stats.summary()
    assert summary["one_hit_wonder_ratio"] == pytest.approx((counts == 1).sum() / unique.size)
    assert summary["write_ratio"] == pytest.approx(writes.mean())


@pytest.mark.parametrize("s", [0.6, 0.9, 1.2])
def test_zipf_fit_recovers_the_exponent_of_generated_traces(tmp_path: Path, s: float) -> None:
    path = zipf_oracle(tmp_path, 300_000, 20_000, s, seed=int(s * 10))
    fit = trace_stats(TraceSpec(path=path)).zipf
    assert fit is not None
    assert fit.s == pytest.approx(s, abs=0.03)


def test_a_uniform_trace_fits_a_small_exponent_and_a_tiny_one_none(tmp_path: Path) -> None:
    rng = np.random.default_rng(10)
    ids = rng.integers(0, 1000, 200_000)
    path = write_oracle(tmp_path / "u.bin", np.zeros(ids.size, dtype=int), ids, np.ones(ids.size))
    fit = trace_stats(TraceSpec(path=path)).zipf
    assert fit is not None and fit.s < 0.1
    tiny = write_oracle(tmp_path / "tiny.bin", [0, 0, 0], [1, 2, 3], [1, 1, 1])
    assert trace_stats(TraceSpec(path=tiny)).zipf is None


def test_a_trace_with_no_requests_left_is_an_error(tmp_path: Path) -> None:
    path = write_oracle(tmp_path / "zeros.bin", [0, 1], [1, 2], [0, 0])  # all size 0: skipped
    with pytest.raises(TraceError, match="no requests in the trace"):
        trace_stats(TraceSpec(path=path))
