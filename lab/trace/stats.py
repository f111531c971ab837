"""Trace statistics in one streaming pass: requests, keys, bytes, one-hit wonders, the
read/write mix, a Zipf fit and the reuse-distance histogram (LRU miss-ratio curve).

Memory is O(distinct keys) (the key table, a count and a size per key, the
reuse tree), never O(requests): a trace larger than memory is read one chunk
at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lab.trace.popularity import ZipfFit, fit_zipf
from lab.trace.reuse import StackDistances, log2_buckets, shards_sample
from lab.tracefile.keymap import DenseKeys
from lab.tracefile.readers import CHUNK, open_trace
from lab.tracefile.source import detect_format
from lab.tracefile.spec import TraceError, TraceSpec


def _grown(array: np.ndarray, size: int) -> np.ndarray:
    """`array` with room for `size` entries (doubling, so growth is amortized O(1))."""
    if size <= array.size:
        return array
    out = np.zeros(max(size, 2 * array.size), dtype=array.dtype)
    out[: array.size] = array
    return out


@dataclass
class ReuseHistogram:
    """Stack distances of the (sampled) requests: a count per distance, and the colds.

    With SHARDS (rate < 1) distances are scaled by 1/rate and shares are taken over
    the expected sample, rate x requests, the difference from the actual sample
    being added at distance 0 (SHARDS_adj, which corrects most of the error a few
    hot keys falling in or out of the sample cause).
    """

    rate: float = 1.0
    requests: int = 0
    sampled: int = 0
    cold: int = 0
    by_distance: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def add(self, distances: np.ndarray, requests: int) -> None:
        """`distances` of the sampled requests among `requests` consecutive ones."""
        self.requests += requests
        self.sampled += distances.size
        warm = distances[distances >= 0]
        self.cold += distances.size - warm.size
        if self.rate < 1.0:
            warm = np.floor(warm / self.rate).astype(np.int64)
        if warm.size:
            self.by_distance = _grown(self.by_distance, int(warm.max()) + 1)
            self.by_distance += np.bincount(warm, minlength=self.by_distance.size)

    @property
    def _expected(self) -> float:
        return self.sampled if self.rate >= 1.0 else self.rate * self.requests

    @property
    def _adjustment(self) -> float:
        return self._expected - self.sampled

    def lru_miss_ratio(self, capacity: int) -> float:
        """Misses per request of an LRU cache holding `capacity` objects (Mattson)."""
        if not self.sampled:
            return float("nan")
        hits = float(self.by_distance[:capacity].sum()) if capacity > 0 else 0.0
        if capacity > 0:
            hits += self._adjustment
        return min(1.0, max(0.0, 1.0 - hits / self._expected))

    def buckets(self) -> list[tuple[str, float, float]]:
        """(label, share of requests, cumulative share) per log2 bucket of distance, then
        the first requests. The cumulative share through `a-b` is the LRU hit ratio of a
        cache of b+1 objects."""
        if not self.sampled:
            return []
        used = np.flatnonzero(self.by_distance)
        counts = self.by_distance[: used[-1] + 1 if used.size else 0].astype(np.float64)
        if counts.size:
            counts[0] += self._adjustment
        per = np.bincount(log2_buckets(np.arange(counts.size)), weights=counts)
        rows: list[tuple[str, float, float]] = []
        total = 0.0
        for b, count in enumerate(per.tolist()):
            total += count
            low, high = (0, 0) if b == 0 else (1 << (b - 1), (1 << b) - 1)
            label = str(low) if low == high else f"{low}-{high}"
            rows.append((label, count / self._expected, total / self._expected))
        rows.append(("first request", self.cold / self._expected, 1.0))
        return rows


@dataclass
class TraceStats:
    """What `cachelab trace stats` reports."""

    path: str
    format: str
    requests: int = 0
    writes: int = 0
    unique_keys: int = 0
    one_hit_keys: int = 0
    has_size: bool = False
    has_time: bool = False
    request_bytes: int = 0
    working_set_bytes: int = 0
    first_time: float = float("nan")
    last_time: float = float("nan")
    zipf: ZipfFit | None = None
    reuse: ReuseHistogram = field(default_factory=ReuseHistogram)
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64), repr=False)

    @property
    def reads(self) -> int:
        return self.requests - self.writes

    @property
    def one_hit_ratio(self) -> float:
        return self.one_hit_keys / self.unique_keys if self.unique_keys else float("nan")

    @property
    def span(self) -> float:
        return self.last_time - self.first_time

    def summary(self) -> dict[str, Any]:
        """Plain numbers for stats.json (None where the trace has no such field)."""
        return {
            "path": self.path,
            "format": self.format,
            "requests": self.requests,
            "reads": self.reads,
            "writes": self.writes,
            "write_ratio": self.writes / self.requests if self.requests else None,
            "unique_keys": self.unique_keys,
            "one_hit_wonders": self.one_hit_keys,
            "one_hit_wonder_ratio": self.one_hit_ratio,
            "working_set_bytes": self.working_set_bytes if self.has_size else None,
            "request_bytes": self.request_bytes if self.has_size else None,
            "time_span_s": self.span if self.has_time else None,
            "zipf_s": self.zipf.s if self.zipf else None,
            "zipf_ranks_fitted": self.zipf.ranks if self.zipf else None,
            "zipf_request_share_fitted": self.zipf.share if self.zipf else None,
            "reuse_sample_rate": self.reuse.rate,
            "reuse_requests_sampled": self.reuse.sampled,
        }


class _Collector:
    """Folds chunks into a TraceStats."""

    def __init__(self, stats: TraceStats, path: str, sample_rate: float) -> None:
        self.stats = stats
        self.keys = DenseKeys(path)
        self.counts = np.zeros(1 << 12, dtype=np.int64)
        self.sizes = np.zeros(1 << 12, dtype=np.int64)
        self.distances = StackDistances()
        self.rate = sample_rate

    def add(self, chunk: Any) -> None:
        s = self.stats
        ids = self.keys.map(chunk)
        s.requests += ids.size
        s.writes += int(chunk.write.sum())
        self.counts = _grown(self.counts, self.keys.count)
        seen, times = np.unique(ids, return_counts=True)
        self.counts[seen] += times
        if s.has_size:
            self.sizes = _grown(self.sizes, self.keys.count)
            s.request_bytes += int(chunk.size.sum())
            backwards, at = np.unique(ids[::-1], return_index=True)
            self.sizes[backwards] = chunk.size[ids.size - 1 - at]  # each key's last size
        if s.has_time:
            s.first_time = float(np.fmin(s.first_time, chunk.time.min()))
            s.last_time = float(np.fmax(s.last_time, chunk.time.max()))
        sampled = ids[shards_sample(ids, self.rate)]
        s.reuse.add(self.distances.feed(sampled), ids.size)

    def finish(self) -> TraceStats:
        s = self.stats
        counts = self.counts[: self.keys.count]
        s.unique_keys = self.keys.count
        s.one_hit_keys = int((counts == 1).sum())
        s.working_set_bytes = int(self.sizes[: self.keys.count].sum()) if s.has_size else 0
        s.zipf = fit_zipf(counts)
        s.counts = counts
        return s


def trace_stats(spec: TraceSpec, sample_rate: float = 1.0, chunk: int = CHUNK) -> TraceStats:
    """Statistics of the trace `spec` names; reuse distances exact unless sample_rate < 1."""
    if not 0.0 < sample_rate <= 1.0:
        raise ValueError(f"sample rate must be in (0, 1], got {sample_rate}")
    reader = open_trace(spec, chunk)
    stats = TraceStats(
        path=str(spec.path),
        format=detect_format(spec.path, spec.format),
        has_size=reader.has_size,
        has_time=reader.has_time,
        reuse=ReuseHistogram(rate=sample_rate),
    )
    collector = _Collector(stats, str(spec.path), sample_rate)
    for part in reader.chunks():
        collector.add(part)
    if not stats.requests:
        raise TraceError(f"{spec.path}: no requests in the trace; check the file and its format")
    return collector.finish()
