"""The recorder: what every request did, folded into bounded-memory aggregates.

The hot path only appends to a few buffers (contiguous `array('d')` doubles,
a list of hit flags); every FLUSH records they are folded with numpy into
histograms and per-interval counters and cleared. An interval's read-latency
histogram is reduced to its p99 once the client loop says no request that
started in it is still running (`settle`), so memory does not grow with the
number of requests: only one row of counters per interval. Requests whose
intended start falls in the warm-up are kept in the timeseries (marked) but
left out of the summary.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from lab.core import Key
from lab.metrics.histogram import LogHistogram
from lab.metrics.oracle import KeyHistory, Oracle
from lab.scenario import INTERRUPTS_CACHE

FLUSH = 1 << 15
LEVEL_GAUGES = frozenset({"cache_keys", "cache_memory", "connections"})
"""Gauges that are a level at the sample time (keys held, bytes used, open
connections), not a running count."""
PERCENTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}
# time since the key's last acknowledged write, for P(fresh | time since write): 1-2-5 steps
SINCE_EDGES = np.array(
    [0.0] + [m * 10.0**e for e in range(-4, 3) for m in (1, 2, 5)] + [1000.0, 3600.0, np.inf]
)


class _Counters:
    """Named integer counters per interval, growing with simulated time only."""

    def __init__(self) -> None:
        self.columns: dict[str, np.ndarray] = {}
        self.length = 0

    def add(self, name: str, index: np.ndarray, weights: np.ndarray | None = None) -> None:
        if index.size == 0:
            self.columns.setdefault(name, np.zeros(self.length))
            return
        counts = np.bincount(index, weights=weights)
        self._grow(counts.size)
        column = self.columns.setdefault(name, np.zeros(self.length))
        if column.size < self.length:
            column = self.columns[name] = np.pad(column, (0, self.length - column.size))
        column[: counts.size] += counts

    def _grow(self, length: int) -> None:
        if length > self.length:
            self.length = length
            for name, column in self.columns.items():
                self.columns[name] = np.pad(column, (0, length - column.size))

    def column(self, name: str) -> np.ndarray:
        column = self.columns.get(name, np.zeros(self.length))
        return np.pad(column, (0, self.length - column.size))


class Recorder:
    """Collects reads, writes, errors and origin calls for one run."""

    def __init__(self, oracle: Oracle, *, interval: float, warmup: float) -> None:
        self.oracle = oracle
        self.interval = interval
        self.warmup = warmup
        self._history = oracle.history
        # pending raw records (cleared on flush)
        self._read_t = array("d")
        self._read_end = array("d")  # latency = end - t, in numpy at the fold
        self._read_hit: list[bool] = []
        self._stale_t = array("d")
        self._stale_age = array("d")
        self._stale_lag = array("q")
        self._write_t = array("d")
        self._write_end = array("d")
        self._error_t = array("d")
        self._since = array("d")  # time since the key's last write; stale as -(x + 1)
        self._curve_reads = np.zeros(SINCE_EDGES.size - 1, dtype=np.int64)
        self._curve_stale = np.zeros(SINCE_EDGES.size - 1, dtype=np.int64)
        self.origin_read_times = array("d")
        self.origin_write_times = array("d")
        # aggregates over the measured window
        self.read_hist = LogHistogram()
        self.write_hist = LogHistogram()
        self.staleness_hist = LogHistogram()
        self.reads = self.hits = self.writes = self.stale = self.errors = 0
        self.origin_reads = self.origin_writes = 0
        self.version_lag_max = 0
        self.origin_same_key_max = 0  # most concurrent origin reads of one key (stampede width)
        self._origin_per_second: dict[int, int] = {}
        self._series = _Counters()
        self._interval_read_hists: dict[int, LogHistogram] = {}  # intervals still open
        self._interval_p99: dict[int, float] = {}  # closed intervals: only their p99 is kept
        self._settled = 0  # intervals below this index are closed
        self._interval_folded = 0  # pending reads already in their interval's histogram
        self._gauges: list[tuple[float, dict[str, float]]] = []
        self._final_gauge: tuple[float, dict[str, float]] | None = None
        self._observed: dict[str, list[float]] = {}
        self._observed_hists: dict[str, LogHistogram] = {}
        self._counts: dict[str, int] = {}
        self._count_times: dict[str, list[float]] = {}
        self._peaks: dict[str, float] = {}
        self.clock: Callable[[], float] | None = None  # lets count() place events in time
        self.faults: list[tuple[str, float, float]] = []  # (kind, start, end)
        self.end_time = 0.0

    # --- hot path ---------------------------------------------------------------------------

    def read(
        self, intended: float, start: float, end: float, hit: bool, key: Key, version: int
    ) -> None:
        """A completed read: latency from the intended start, staleness as of `start`,
        and (for keys written at least once) its point on the P(fresh | time since the
        key's last write) curve."""
        self._read_t.append(intended)
        self._read_end.append(end)
        self._read_hit.append(hit)
        h = self._history.get(key)
        if h is not None:
            if version < h.max_acked:
                self._stale_or_not(h, intended, start, key, version)
            elif intended >= self.warmup:  # the common case: the newest version, fresh
                last = h.last_t
                if last <= start:
                    self._since.append(start - last)
                else:
                    self._since_write(h, start, False)
        if len(self._read_hit) >= FLUSH:
            self.flush()

    def _stale_or_not(
        self, h: KeyHistory, intended: float, start: float, key: Key, version: int
    ) -> None:
        """A read of an older version than the newest acknowledged: ask the oracle."""
        stale = False
        judged = self.oracle.judge(key, version, start)
        if judged is not None:
            stale = True
            self._stale_t.append(intended)
            self._stale_age.append(judged[0])
            self._stale_lag.append(judged[1])
        if intended >= self.warmup:
            self._since_write(h, start, stale)

    def _since_write(self, h: KeyHistory, start: float, stale: bool) -> None:
        """The read's point on the P(fresh | time since the key's last write) curve: the
        newest version acknowledged at or before its start."""
        acks = h.acks
        i = h.max_acked - h.base
        while i >= 0 and acks[i] > start:  # acked while the read was under way
            i -= 1
        if i >= 0:
            since = start - acks[i]
            # one buffer: a stale read is stored as -(since + 1)
            self._since.append(-since - 1.0 if stale else since)

    def write(self, intended: float, end: float) -> None:
        self._write_t.append(intended)
        self._write_end.append(end)
        if len(self._write_t) >= FLUSH:
            self.flush()

    def error(self, intended: float) -> None:
        self._error_t.append(intended)

    # --- the Metrics protocol, for what parts report (flush lag, backlog, ...) -----------------

    def _measuring(self) -> bool:
        return self.clock is None or self.clock() >= self.warmup

    def observe(self, name: str, value: float) -> None:
        """A sample of `name` (summary: p50/p99/max over the measured window)."""
        if not self._measuring():
            return
        samples = self._observed.get(name)
        if samples is None:
            samples = self._observed[name] = []
            self._observed_hists[name] = LogHistogram()
        samples.append(value)
        if len(samples) >= FLUSH:
            self._observed_hists[name].record_many(np.array(samples))
            samples.clear()

    def count(self, name: str, n: int = 1) -> None:
        """Counted over the measured window in the summary, per interval in the timeseries."""
        t = self.clock() if self.clock is not None else self.warmup
        times = self._count_times.get(name)
        if times is None:
            times = self._count_times[name] = []
            self._counts.setdefault(name, 0)
        times.extend([t] * n)
        if t >= self.warmup:
            self._counts[name] += n
        if len(times) >= FLUSH:
            self._series.add(name, self._index(np.array(times)))
            times.clear()

    def peak(self, name: str, value: float) -> None:
        """The largest `name` seen in the measured window."""
        if not self._measuring():
            return
        if value > self._peaks.get(name, -math.inf):
            self._peaks[name] = value

    def gauge(self, t: float, **values: float) -> None:
        """Backend figures sampled at interval boundaries: cumulative counters (evictions:
        the timeseries shows their change, `<name>_delta`) and LEVEL_GAUGES (shown as
        sampled). A sample belongs to the interval whose end is nearest to `t`, so a real
        clock's 1.0003 s is the end of the first interval."""
        self._gauges.append((t, values))

    def gauge_final(self, t: float, **values: float) -> None:
        """The same figures at the end of the run (after any drain): they fill the last
        interval if no boundary sample did. Not counted in the summary's peaks."""
        self._final_gauge = (t, values)

    def _gauge_rows(self, n: int) -> pd.DataFrame:
        """One row of gauges per interval: each sample binned to its interval, the final
        sample in the interval it falls in if that one has none; intervals without a
        sample carry the last level forward (a missed tick does not blank the dashboard)."""
        rows: dict[int, dict[str, float]] = {}
        for t, values in self._gauges:
            row = max(round(t / self.interval) - 1, 0)
            if row < n:  # (ticks while a drain outlasts the last recorded interval: none)
                rows[row] = values
        if self._final_gauge is not None and n:
            t, values = self._final_gauge
            rows.setdefault(min(max(math.ceil(t / self.interval - 1e-9) - 1, 0), n - 1), values)
        sampled = pd.DataFrame.from_dict(rows, orient="index").reindex(range(n)).ffill()
        levels = sampled[[c for c in sampled.columns if c in LEVEL_GAUGES]]
        cumulative = sampled[[c for c in sampled.columns if c not in LEVEL_GAUGES]]
        per_interval = cumulative.diff().fillna(cumulative).add_suffix("_delta")
        out = per_interval.join(levels)
        if not out.isna().any().any():  # whole numbers print as such
            out = out.astype({c: np.int64 for c in levels.columns if (levels[c] % 1 == 0).all()})
        return out.reset_index(drop=True)

    # --- folding ----------------------------------------------------------------------------

    def _index(self, times: np.ndarray) -> np.ndarray:
        return np.maximum((times / self.interval).astype(np.int64), 0)

    def flush(self) -> None:
        """Fold pending records into aggregates and free them."""
        if self._read_hit:
            self._fold_reads()
        if self._stale_t:
            self._fold_stale()
        if self._since:
            encoded = np.array(self._since)
            del self._since[:]
            stale = encoded < 0
            since = np.where(stale, -encoded - 1.0, encoded)
            bins = np.digitize(since, SINCE_EDGES[1:-1])
            size = SINCE_EDGES.size - 1
            self._curve_reads += np.bincount(bins, minlength=size)
            self._curve_stale += np.bincount(bins[stale], minlength=size)
        if self._write_t:
            t = _take(self._write_t)
            lat = _take(self._write_end) - t
            measured = t >= self.warmup
            self.write_hist.record_many(lat[measured])
            self.writes += int(measured.sum())
            self._series.add("writes", self._index(t))
        if self._error_t:
            t = _take(self._error_t)
            self.errors += int((t >= self.warmup).sum())
            self._series.add("errors", self._index(t))
        if self.origin_read_times:
            self._fold_origin_reads()
        for name, times in self._count_times.items():
            if times:
                self._series.add(name, self._index(np.array(times)))
                times.clear()
        if self.origin_write_times:
            t = _take(self.origin_write_times)
            self.origin_writes += int((t >= self.warmup).sum())
            self._series.add("origin_writes", self._index(t))

    def _fold_reads(self) -> None:
        self._fold_interval_reads()
        self._interval_folded = 0
        t = _take(self._read_t)
        lat = _take(self._read_end) - t
        hit = np.array(self._read_hit, dtype=bool)
        self._read_hit.clear()
        measured = t >= self.warmup
        self.read_hist.record_many(lat[measured])
        self.reads += int(measured.sum())
        self.hits += int(hit[measured].sum())
        index = self._index(t)
        self._series.add("reads", index)
        self._series.add("hits", index[hit])

    def _fold_interval_reads(self) -> None:
        """Add the pending reads not yet in their interval's histogram (the rest of a
        read's folding waits for FLUSH records, so the run's sums do not depend on when
        intervals close)."""
        start = self._interval_folded
        if start == len(self._read_t):
            return
        t = np.frombuffer(self._read_t, dtype=np.float64)[start:]
        lat = np.frombuffer(self._read_end, dtype=np.float64)[start:] - t
        index = self._index(t)
        hists = self._interval_read_hists
        for i in np.unique(index).tolist():
            if i < self._settled:  # cannot happen if `settle` was told the truth
                raise RuntimeError(f"a read started in interval {i} after it was settled")
            h = hists.get(i)
            if h is None:
                h = hists[i] = LogHistogram(sub_bits=4)
            h.record_many(lat[index == i])
        del t, lat  # release the buffers' exports before they are resized
        self._interval_folded = len(self._read_t)

    def _fold_stale(self) -> None:
        t, age = _take(self._stale_t), _take(self._stale_age)
        lag = np.array(self._stale_lag, dtype=np.int64)
        del self._stale_lag[:]
        measured = t >= self.warmup
        self.stale += int(measured.sum())
        self.staleness_hist.record_many(age[measured])
        if measured.any():
            self.version_lag_max = max(self.version_lag_max, int(lag[measured].max()))
        self._series.add("stale_reads", self._index(t))

    def _fold_origin_reads(self) -> None:
        t = _take(self.origin_read_times)
        warm = self.warmup
        measured = t[t >= warm]
        self.origin_reads += int(measured.size)
        seconds, counts = np.unique((measured - warm).astype(np.int64), return_counts=True)
        per_second = self._origin_per_second
        for s, c in zip(seconds.tolist(), counts.tolist(), strict=True):
            per_second[s] = per_second.get(s, 0) + c
        self._series.add("origin_reads", self._index(t))

    def settle(self, before: float) -> None:
        """Every request whose intended start is before `before` has been recorded: reduce
        the read-latency histograms of the intervals that ended by then to their p99."""
        closed = int(before / self.interval) if before > 0 else 0  # as `_index` bins
        if closed <= self._settled:
            return
        self._fold_interval_reads()
        hists = self._interval_read_hists
        for i in [i for i in hists if i < closed]:
            self._interval_p99[i] = hists.pop(i).percentile(99)
        self._settled = closed

    @property
    def open_intervals(self) -> int:
        """Intervals whose read-latency histogram is still kept (not yet settled)."""
        return len(self._interval_read_hists)

    def _read_p99(self, i: int) -> float:
        if i in self._interval_p99:
            return self._interval_p99[i]
        hist = self._interval_read_hists.get(i)
        return hist.percentile(99) if hist is not None else math.nan

    # --- results ----------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """The stable metric keys of summary.json (times in seconds; None when undefined)."""
        self.flush()
        reads, writes = self.reads, self.writes
        measured_time = max(self.end_time - self.warmup, 0.0)
        out: dict[str, Any] = {
            "requests": reads + writes,
            "reads": reads,
            "writes": writes,
            "hits": self.hits,
            "hit_ratio": _ratio(self.hits, reads),
            "stale_reads": self.stale,
            "stale_read_ratio": _ratio(self.stale, reads),
            "staleness_age_p50": _none_if_nan(self.staleness_hist.percentile(50)),
            "staleness_age_p99": _none_if_nan(self.staleness_hist.percentile(99)),
            "staleness_age_max": _none_if_nan(self.staleness_hist.percentile(100)),
            "version_lag_max": self.version_lag_max,
        }
        for op, hist in (("read", self.read_hist), ("write", self.write_hist)):
            for name, q in PERCENTILES.items():
                out[f"{op}_latency_{name}"] = _none_if_nan(hist.percentile(q))
            out[f"{op}_latency_max"] = _none_if_nan(hist.percentile(100))
            out[f"{op}_latency_mean"] = _none_if_nan(hist.mean)
        out.update(
            origin_reads=self.origin_reads,
            origin_writes=self.origin_writes,
            origin_reads_peak_per_s=max(self._origin_per_second.values(), default=0),
            origin_same_key_max=self.origin_same_key_max,
            errors=self.errors,
            measured_time=measured_time,
            throughput=(reads + writes) / measured_time if measured_time > 0 else None,
        )
        for name, samples in self._observed.items():
            hist = self._observed_hists[name]
            hist.record_many(np.array(samples))
            samples.clear()
            out[f"{name}_p50"] = _none_if_nan(hist.percentile(50))
            out[f"{name}_p99"] = _none_if_nan(hist.percentile(99))
            out[f"{name}_max"] = _none_if_nan(hist.percentile(100))
        out.update(self._counts)
        out.update({f"{name}_max": value for name, value in self._peaks.items()})
        out.update(self._gauge_peaks())
        out.update(self._fault_effects())
        if self.oracle.floored:  # stale reads of versions older than the oracle's horizon
            out["staleness_age_floored"] = self.oracle.floored
        return out

    def _gauge_peaks(self) -> dict[str, Any]:
        """Highest sampled cache memory and connection count after the warm-up."""
        out: dict[str, Any] = {}
        for name, key in (
            ("cache_memory", "cache_memory_peak"),
            ("connections", "connections_max"),
        ):
            seen = [v[name] for t, v in self._gauges if name in v and t > self.warmup]
            if seen:
                out[key] = max(seen)
        return out

    def _fault_effects(self) -> dict[str, Any]:
        """Recovery after faults that empty or cut off the cache, and the origin spike.

        recovery_time: from the end of the fault until the hit ratio is back to 90% of
        its mean over the five intervals before the fault (None if it never is).
        fault_origin_peak_per_s: the busiest interval for the origin from the fault's start
        until it recovered (or the end of the run), in reads per second.
        """
        if not self.faults:
            return {}
        series = self.timeseries()
        t = series["t"].to_numpy()
        hit = series["hit_ratio"].to_numpy()
        origin = series["origin_reads"].to_numpy() / self.interval
        recoveries: list[float | None] = []
        peak = 0.0
        for kind, start, end in self.faults:
            before = hit[(t + self.interval <= start) & (t >= self.warmup)][-5:]
            before = before[~np.isnan(before)]
            level = float(before.mean()) if before.size else math.nan
            recovered: float | None = None
            if level == level and kind in INTERRUPTS_CACHE:
                after = np.nonzero((t >= end) & (hit >= 0.9 * level))[0]
                recovered = float(t[after[0]] + self.interval - end) if after.size else None
                recoveries.append(recovered)
            stop = end + (recovered if recovered is not None else math.inf)
            window = (t + self.interval > start) & (t < stop)
            if window.any():
                peak = max(peak, float(origin[window].max()))
        finite = [r for r in recoveries if r is not None]
        return {
            "recovery_time": (
                None
                if not recoveries
                else (max(finite) if len(finite) == len(recoveries) else None)
            ),
            "fault_origin_peak_per_s": peak,
        }

    def staleness_curve(self) -> pd.DataFrame:
        """P(fresh | time since the key's last acknowledged write), over the measured reads
        of keys written at least once (a never-written key cannot be stale)."""
        self.flush()
        reads, stale = self._curve_reads, self._curve_stale
        with np.errstate(invalid="ignore", divide="ignore"):
            p_fresh = 1.0 - stale / reads
        return pd.DataFrame(
            {
                "since_lo": SINCE_EDGES[:-1],
                "since_hi": SINCE_EDGES[1:],
                "reads": reads,
                "stale_reads": stale,
                "p_fresh": p_fresh,
            }
        )

    def distributions(self) -> pd.DataFrame:
        """The measured histograms (read/write latency, staleness age) as (metric, value,
        count) rows, for CDFs: each value is a bucket's midpoint (<= 0.4% error)."""
        self.flush()
        frames = []
        for metric, hist in (
            ("read_latency", self.read_hist),
            ("write_latency", self.write_hist),
            ("staleness_age", self.staleness_hist),
        ):
            index = np.nonzero(hist.counts)[0]
            frames.append(
                pd.DataFrame(
                    {
                        "metric": metric,
                        "value": [hist.midpoint(int(i)) for i in index],
                        "count": hist.counts[index],
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)

    def timeseries(self) -> pd.DataFrame:
        """One row per interval: counts, ratios, read p99, origin load, gauges."""
        self.flush()
        series = self._series
        n = series.length
        t = np.arange(n) * self.interval
        frame = pd.DataFrame({"t": t, "t_end": t + self.interval})
        for name in (
            "reads",
            "hits",
            "stale_reads",
            "writes",
            "errors",
            "origin_reads",
            "origin_writes",
        ):
            frame[name] = series.column(name).astype(np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            frame["hit_ratio"] = frame["hits"] / frame["reads"]
            frame["stale_ratio"] = frame["stale_reads"] / frame["reads"]
        frame["read_p99"] = [self._read_p99(i) for i in range(n)]
        frame["warmup"] = frame["t"] < self.warmup
        for name in self._count_times:
            frame[name] = series.column(name).astype(np.int64)
        if self.faults:
            frame["fault"] = [
                ",".join(k for k, start, end in self.faults if start < t1 and end > t0)
                for t0, t1 in zip(frame["t"], frame["t_end"], strict=True)
            ]
        if self._gauges:
            frame = pd.concat([frame, self._gauge_rows(n)], axis=1)
        return frame


def _take(buffer: array[float]) -> np.ndarray:
    """The buffer's values as a numpy array (a copy), leaving the buffer empty."""
    values = np.array(buffer, dtype=np.float64)
    del buffer[:]
    return values


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def _none_if_nan(x: float) -> float | None:
    return None if math.isnan(x) else x
