"""The latency-matched simulator twin of a real run.

A real run's operations take longer than the scenario's: one Python process runs
the load generator, every app instance's client and the emulated origin, and its
event loop adds its own lag to every cache and origin call. With writes, the
cache-aside races (a fill that lands after an invalidation) and the fill windows
(every read of an invalidated key misses until the refill lands) grow with those
times, so the hit and stale-read ratios of a real run are those of a slower
deployment than the scenario describes.

The twin runs the simulator again with the latencies the real run measured:

- every cache operation takes a time drawn from the real run's own cache-operation
  times (client side: GET, SET, DEL, ... including the wait for a connection and
  the event loop's lag; `cache_op_quantiles`, inverse-CDF sampling), half of it
  before the operation reaches the node and half after (`LaggedSimBackend`), and the
  simulated network's rtt and node's service time are zero (the measured times
  include them);
- `origin.read_latency` / `origin.write_latency`: lognormals through the real origin
  calls' p50 and p99, which `TimedRedisBackend` measures around each call (the
  emulated service time, the database, the wait for one of the origin's
  `concurrency` slots and the loop's lag); the twin's origin then has no slot limit
  (`UNQUEUED`), not to queue the calls a second time.

Why the cache time is not a lognormal rtt: the real cache-operation times are
heavy-tailed (p50 ~0.2 ms, p99 tens of ms: the process stalls on a busy machine),
and the simulated node serves operations in the order they were *sent*, each
arriving half an rtt later: one 300 ms rtt draw holds every later operation of its
node behind it, a queue the real server never has. A lognormal rtt through the
real p50/p99 (`matched_scenario(..., cache="rtt")`) made the twin's median
cache operation 4.7 ms where the real one took 0.2 ms. The time added around the
operation (`LaggedCache`) does not occupy the node.

Only the marginal distributions are matched: the real lag is correlated in time (a
stall delays every operation under way at once, and the load generator then sends
the requests it owes in a burst), the twin's draws are independent.
docs/fidelity-grid.md says what that leaves.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from lab.backend import FinalState, Parts
from lab.core import Key, Versioned
from lab.metrics.histogram import LogHistogram
from lab.metrics.ops import OpLatencies
from lab.redis.backend import RedisBackend
from lab.sampling import Sampler, rng_for
from lab.scenario import Cell, Distribution, Scenario
from lab.sim.backend import SimBackend
from lab.sim.bridge import delay

MIN_LATENCY = 1e-6
"""The smallest median a fitted distribution gets (seconds): a lognormal needs one > 0."""
MIN_SPREAD = 1.01
"""The smallest p99/median ratio a fitted lognormal gets (a lognormal needs p99 > median)."""


def fit_lognormal(p50: float, p99: float, *, minus: float = 0.0) -> Distribution:
    """The lognormal through a measured median and 99th percentile, less `minus`
    seconds (a part of every sample that the simulator adds by itself). The median is
    floored at `MIN_LATENCY` and the p99 at `MIN_SPREAD` times the median."""
    if not (math.isfinite(p50) and math.isfinite(p99)) or p50 <= 0 or p99 <= 0:
        raise ValueError(f"cannot fit a lognormal to p50={p50!r}, p99={p99!r}")
    median = max(p50 - minus, MIN_LATENCY)
    high = max(p99 - minus, median * MIN_SPREAD)
    return Distribution(distribution="lognormal", median=median, p99=high)


@dataclass(frozen=True)
class Measured:
    """Latencies a real run measured (seconds; None: not measured)."""

    cache_op_p50: float | None = None
    cache_op_p99: float | None = None
    origin_read_p50: float | None = None
    origin_read_p99: float | None = None
    origin_write_p50: float | None = None
    origin_write_p99: float | None = None

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> Measured:
        """From a real run's summary (the origin fields come from `TimedRedisBackend`)."""
        names = [f.name for f in dataclasses.fields(cls)]
        return cls(**{n: _seconds(summary.get(n)) for n in names})


def _seconds(value: object) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if not isinstance(value, int | float):
        return None
    x = float(value)
    return x if math.isfinite(x) and x > 0 else None


ZERO = Distribution(distribution="constant", value=0.0)
UNQUEUED = 100_000
"""The twin origin's concurrency when its times are measured ones (they include the
real origin's queue)."""


def matched_scenario(
    scenario: Scenario, measured: Measured, *, cache: Literal["lag", "rtt"] = "lag"
) -> Scenario:
    """`scenario` with the latencies `measured` has (those it lacks stay as they are).

    `cache="lag"`: the network's rtt and the node's service time become zero (the
    twin's `LaggedCache` adds the measured cache-operation times, which include
    them); `cache="rtt"`: the rtt becomes the lognormal
    through the measured cache-operation p50/p99, less the node's mean service time
    (the module docstring says why the twin does not use it)."""
    topology, origin = scenario.topology, scenario.origin
    service = topology.service_time.mean_value
    rtt = topology.network.rtt
    if cache == "lag":  # the measured times include the network and the server's
        rtt, topology = ZERO, topology.model_copy(update={"service_time": ZERO})
    elif measured.cache_op_p50 is not None and measured.cache_op_p99 is not None:
        rtt = fit_lognormal(measured.cache_op_p50, measured.cache_op_p99, minus=service)
    # the simulator's origin call takes an rtt drawn from the same network (half each way)
    rtt_median = rtt.median if rtt.distribution == "lognormal" and rtt.median else rtt.mean_value
    read, write = origin.read_latency, origin.write_latency
    if measured.origin_read_p50 is not None and measured.origin_read_p99 is not None:
        read = fit_lognormal(measured.origin_read_p50, measured.origin_read_p99, minus=rtt_median)
    if measured.origin_write_p50 is not None and measured.origin_write_p99 is not None:
        write = fit_lognormal(
            measured.origin_write_p50, measured.origin_write_p99, minus=rtt_median
        )
    network = topology.network.model_copy(update={"rtt": rtt})
    origin_update: dict[str, Any] = {"read_latency": read, "write_latency": write}
    if cache == "lag" and (read is not origin.read_latency or write is not origin.write_latency):
        # the measured origin times include the wait for one of the origin's
        # `concurrency` slots: the twin's origin must not queue them a second time
        origin_update["concurrency"] = UNQUEUED
    return scenario.model_copy(
        update={
            "topology": topology.model_copy(update={"network": network}),
            "origin": origin.model_copy(update=origin_update),
        }
    )


def describe(scenario: Scenario) -> dict[str, float | None]:
    """The latencies a (matched) scenario uses, in seconds: for the table."""
    out: dict[str, float | None] = {}
    for name, dist in (
        ("rtt", scenario.topology.network.rtt),
        ("origin_read", scenario.origin.read_latency),
        ("origin_write", scenario.origin.write_latency),
    ):
        out[f"{name}_median"] = dist.median if dist.distribution == "lognormal" else None
        out[f"{name}_p99"] = dist.p99 if dist.distribution == "lognormal" else None
    return out


# --- measuring the real origin ---------------------------------------------------------------


class CallTimes:
    """Durations of calls started after `after` (a `time.perf_counter` instant)."""

    def __init__(self) -> None:
        self.after = math.inf
        self.hist = LogHistogram()
        self._pending: list[float] = []

    def add(self, start: float, took: float) -> None:
        if start >= self.after:
            self._pending.append(took)

    def summary(self, prefix: str) -> dict[str, float | int | None]:
        if self._pending:
            self.hist.record_many(np.asarray(self._pending, dtype=np.float64))
            self._pending.clear()
        if not self.hist.total:
            return {f"{prefix}_calls": 0, f"{prefix}_p50": None, f"{prefix}_p99": None}
        p50, p99 = self.hist.percentile(50), self.hist.percentile(99)
        return {
            f"{prefix}_calls": int(self.hist.total),
            f"{prefix}_p50": None if math.isnan(p50) else p50,
            f"{prefix}_p99": None if math.isnan(p99) else p99,
        }


class TimedOrigin:
    """An origin that times each read and write, as the app instance sees it (the
    emulated service, the database, the wait for a slot and the event loop's lag)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.reads = CallTimes()
        self.writes = CallTimes()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def read(self, key: Key) -> Versioned:
        start = time.perf_counter()
        value: Versioned = await self._inner.read(key)
        self.reads.add(start, time.perf_counter() - start)
        return value

    async def write(self, key: Key, value: Versioned | None = None) -> Versioned:
        start = time.perf_counter()
        out: Versioned = await self._inner.write(key, value)
        self.writes.add(start, time.perf_counter() - start)
        return out


class TimedRedisBackend(RedisBackend):
    """The redis backend, unchanged, plus the origin calls' p50/p99 after the warm-up
    in the summary (`origin_read_p50`, `origin_read_p99`, `origin_write_p50`, ...)."""

    timed: TimedOrigin | None = None

    async def _parts(self, scenario: Any, cell: Any, site: Any, stack: Any) -> Any:
        parts = await super()._parts(scenario, cell, site, stack)
        self.timed = TimedOrigin(parts.origin)
        return dataclasses.replace(parts, origin=self.timed)

    async def run(self, parts: Any, workload: Any) -> None:
        if self.timed is not None and self.scenario is not None:
            after = time.perf_counter() + self.scenario.warmup
            self.timed.reads.after = self.timed.writes.after = after
        await super().run(parts, workload)

    async def final_state(self, parts: Any) -> Any:
        state = await super().final_state(parts)
        if self.timed is not None:
            state.fields.update(self.timed.reads.summary("origin_read"))
            state.fields.update(self.timed.writes.summary("origin_write"))
        if self.cache is not None:
            state.fields["cache_op_quantiles"] = quantiles(self.cache.op_times.hist)
        return state


QUANTILE_STEPS = 200
"""`quantiles` gives the 0th, 0.5th, ..., 100th percentile."""


def quantiles(hist: LogHistogram, steps: int = QUANTILE_STEPS) -> list[float] | None:
    """The histogram's percentiles at `steps` + 1 evenly spaced ranks (None if empty)."""
    if not hist.total:
        return None
    return [hist.min] + [hist.percentile(100 * i / steps) for i in range(1, steps + 1)]


def quantile_sampler(points: Sequence[float], rng: np.random.Generator) -> Sampler:
    """Draws from the distribution whose quantiles at evenly spaced ranks (0 to 1) are
    `points` (inverse-CDF sampling, linear between them)."""
    qs = np.asarray(points, dtype=np.float64)
    if qs.ndim != 1 or qs.size < 2 or not np.all(np.isfinite(qs)):
        raise ValueError("need two or more finite quantiles")
    if np.any(np.diff(qs) < 0) or qs[0] < 0:
        raise ValueError("quantiles must be non-negative and non-decreasing")
    ranks = np.linspace(0.0, 1.0, qs.size)

    def chunks() -> Any:
        while True:
            yield np.interp(rng.random(4096), ranks, qs).tolist()

    return itertools.chain.from_iterable(chunks()).__next__


# --- the twin's cache: the measured time around each operation -------------------------------

_OPS = ("get", "set", "delete", "set_if_equal", "delete_if_equal", "incr")


class WrappedOps:
    """The simulated cluster with each cache operation wrapped by `_wrap` (the twins'
    client times) and timed into `times`; everything else is the cluster's own."""

    _inner: Any
    times: OpLatencies

    def _wrap_ops(self, inner: Any) -> None:
        self._inner = inner
        self.times = OpLatencies()
        for name in _OPS:
            setattr(self, name, self._wrap(getattr(inner, name)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _wrap(self, op: Callable[..., Any]) -> Callable[..., Any]:
        raise NotImplementedError


class LaggedCache(WrappedOps):
    """The simulated cluster with a time drawn from `lag` around each operation: a
    share `before` of it before the operation reaches its node, the rest after the
    reply. The node is not held meanwhile (the time is the client's, not the
    network's). `times` holds each operation's whole time, as the real client's
    `op_times` does."""

    def __init__(self, inner: Any, env: Any, lag: Sampler, before: float = 0.5) -> None:
        if not 0.0 <= before <= 1.0:
            raise ValueError("before is a share, 0 to 1")
        self._env, self._lag, self._before = env, lag, before
        self._wrap_ops(inner)

    def _wrap(self, op: Callable[..., Any]) -> Callable[..., Any]:
        env, lag, before, add = self._env, self._lag, self._before, self.times.add

        async def lagged(*args: Any, **kwargs: Any) -> Any:
            start = env.now
            extra = lag()
            await delay(extra * before)
            result = await op(*args, **kwargs)
            await delay(extra * (1.0 - before))
            add(env.now - start)
            return result

        return lagged


class LaggedSimBackend(SimBackend):
    """The simulator with `LaggedCache` in front of its cluster: every cache operation
    also takes a time drawn from `lag_quantiles` (`quantile_sampler`; its own random
    stream per seed). `cache_op_p50` / `cache_op_p99` in the summary are the whole
    operations'."""

    def __init__(self, lag_quantiles: Sequence[float], before: float = 0.5) -> None:
        super().__init__()
        self.lag_quantiles = list(lag_quantiles)
        self.before = before
        self.lagged: LaggedCache | None = None

    def _parts(self, scenario: Scenario, cell: Cell) -> Parts:
        parts = super()._parts(scenario, cell)
        lag = quantile_sampler(self.lag_quantiles, rng_for(cell.seed, "fidelity.client_lag"))
        self.lagged = LaggedCache(parts.cache, self.env, lag, self.before)
        return dataclasses.replace(parts, cache=self.lagged)

    def warmup_over(self, parts: Parts) -> int:
        if self.lagged is not None:
            self.lagged.times.reset()
        return super().warmup_over(parts)

    async def final_state(self, parts: Parts) -> FinalState:
        state = await super().final_state(parts)
        if self.lagged is not None:
            state.fields.update(self.lagged.times.summary())
        return state
