"""The stall twin: the simulator with the real client process's pauses.

The latency-matched twin (`lab.fidelity.matched`) draws each cache operation's time
independently from the real run's. The real run's slow operations are not
independent: its one Python process stops as a whole (the machine's other work
takes the core, a garbage collection), and everything under way in it, every
cache reply, every origin reply, every request the load generator owes, waits
for the same instant. Independent draws reorder what a pause keeps in order (a
fill's SET delayed 200 ms while the invalidating write goes through), and make
races the real run cannot have.

This twin keeps the order: a timeline of stalls (`Stalls`) that every cache and
origin call of the simulated app instances respects. A call sent during a stall
leaves at its end; a reply that arrives during a stall is taken at its end; between
stalls, cache operations take the fast body of the measured times. The stalls are
fitted to the real cache-operation times (`fit_stalls`): an operation slower than
`threshold` (3x the median, and at least 1 ms over it) is one a stall caught; the
share of them is the share of time stalled, and a stall lasts twice the excess time
of such an operation (an operation is caught, on average, half-way through a stall
of fixed length). The origin keeps the scenario's own latencies (the real origin
emulates exactly those), the stalls on top.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lab.backend import FinalState, Parts
from lab.core import Key, Versioned
from lab.fidelity.matched import CallTimes, WrappedOps, quantile_sampler
from lab.sampling import Sampler, rng_for
from lab.scenario import Cell, Scenario
from lab.sim.backend import SimBackend
from lab.sim.bridge import delay

THRESHOLD_FACTOR = 3.0
MIN_EXCESS = 0.001
STALL_FACTOR = 2.0
"""A stall's length over the excess of the operations it caught."""


@dataclass(frozen=True)
class StallFit:
    """Cache-operation times split into a fast body and stalls."""

    body: list[float]
    """Quantiles (evenly spaced ranks) of the operations no stall caught."""
    share: float
    """Share of time stalled: the share of operations slower than `threshold`."""
    excess: list[float]
    """Quantiles of the caught operations' time beyond the median."""
    threshold: float


def fit_stalls(points: Sequence[float]) -> StallFit:
    """Split measured quantiles (evenly spaced ranks, 0 to 1) at `THRESHOLD_FACTOR` times
    the median (at least `MIN_EXCESS` over it)."""
    qs = np.asarray(points, dtype=np.float64)
    if qs.ndim != 1 or qs.size < 3 or np.any(np.diff(qs) < 0) or not np.all(np.isfinite(qs)):
        raise ValueError("need three or more finite, non-decreasing quantiles")
    ranks = np.linspace(0.0, 1.0, qs.size)
    median = float(np.interp(0.5, ranks, qs))
    threshold = max(THRESHOLD_FACTOR * median, median + MIN_EXCESS)
    rank = float(np.interp(threshold, qs, ranks)) if threshold < qs[-1] else 1.0
    share = 1.0 - rank
    steps = qs.size - 1
    body = np.interp(np.linspace(0.0, rank, steps + 1), ranks, qs)
    if share <= 0:
        return StallFit(body.tolist(), 0.0, [0.0, 0.0], threshold)
    tail = np.interp(np.linspace(rank, 1.0, steps + 1), ranks, qs) - median
    return StallFit(body.tolist(), share, np.maximum(tail, 0.0).tolist(), threshold)


class Stalls:
    """A timeline of pauses: run periods (exponential) between stalls whose lengths
    come from `lengths`, `share` of the time stalled on average. Built lazily as far as
    asked; `release(t)` is when something due at `t` happens."""

    def __init__(self, share: float, lengths: Sampler, rng: np.random.Generator) -> None:
        if not 0.0 <= share < 1.0:
            raise ValueError("share is a fraction below 1")
        self.share, self._lengths, self._rng = share, lengths, rng
        self.starts: list[float] = []
        self.ends: list[float] = []
        self._until = 0.0
        mean = float(np.mean([lengths() for _ in range(2000)])) if share > 0 else 0.0
        self._run_mean = mean * (1.0 - share) / share if share > 0 and mean > 0 else 0.0

    def _extend(self, t: float) -> None:
        while self._until <= t:
            start = self._until + float(self._rng.exponential(self._run_mean))
            end = start + self._lengths()
            self.starts.append(start)
            self.ends.append(end)
            self._until = end

    def release(self, t: float) -> float:
        if self._run_mean <= 0:
            return t
        self._extend(t)
        i = bisect.bisect_right(self.starts, t) - 1
        return self.ends[i] if i >= 0 and t < self.ends[i] else t


class StalledCache(WrappedOps):
    """The simulated cluster as the stalled client sees it: an operation leaves at the
    end of the stall it is sent in, after `body` (the fast part of its time, half
    before and half after the node), and its reply is taken at the end of the stall
    it arrives in. `times` holds each operation's whole time."""

    def __init__(self, inner: Any, env: Any, stalls: Stalls, body: Sampler) -> None:
        self._env, self._stalls, self._body = env, stalls, body
        self._wrap_ops(inner)

    def _wrap(self, op: Callable[..., Any]) -> Callable[..., Any]:
        env, release, body, add = self._env, self._stalls.release, self._body, self.times.add

        async def stalled(*args: Any, **kwargs: Any) -> Any:
            start = env.now
            half = body() * 0.5
            await delay(release(start) - start + half)
            result = await op(*args, **kwargs)
            arrived = env.now + half
            await delay(release(arrived) - env.now)
            add(env.now - start)
            return result

        return stalled


class StalledOrigin:
    """The simulated origin as the stalled client sees it (as `StalledCache`, with no
    body time: the origin's own latencies are the scenario's). `reads` / `writes`:
    the calls' whole times after `after`."""

    def __init__(self, inner: Any, env: Any, stalls: Stalls) -> None:
        self._inner, self._env, self._stalls = inner, env, stalls
        self.reads, self.writes = CallTimes(), CallTimes()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def _call(self, call: Any, times: CallTimes) -> Any:
        env, release = self._env, self._stalls.release
        start = env.now
        await delay(release(start) - start)
        result = await call
        await delay(release(env.now) - env.now)
        times.add(start, env.now - start)
        return result

    async def read(self, key: Key) -> Versioned:
        out: Versioned = await self._call(_later(self._inner.read, key), self.reads)
        return out

    async def write(self, key: Key, value: Versioned | None = None) -> Versioned:
        out: Versioned = await self._call(_later(self._inner.write, key, value), self.writes)
        return out


async def _later(fn: Callable[..., Any], *args: Any) -> Any:
    """Call `fn` when awaited (not when built: after the send's stall)."""
    return await fn(*args)


class StalledSimBackend(SimBackend):
    """The simulator behind `StalledCache` and `StalledOrigin`, sharing one `Stalls`
    timeline fitted to the real run's cache-operation quantiles (`fit_stalls`)."""

    def __init__(self, op_quantiles: Sequence[float]) -> None:
        super().__init__()
        self.fit = fit_stalls(op_quantiles)
        self.cache_view: StalledCache | None = None
        self.origin_view: StalledOrigin | None = None

    def _parts(self, scenario: Scenario, cell: Cell) -> Parts:
        parts = super()._parts(scenario, cell)
        fit = self.fit
        lengths = quantile_sampler(
            [STALL_FACTOR * x for x in fit.excess], rng_for(cell.seed, "fidelity.stall_length")
        )
        stalls = Stalls(fit.share, lengths, rng_for(cell.seed, "fidelity.stalls"))
        body = quantile_sampler(fit.body, rng_for(cell.seed, "fidelity.body"))
        self.cache_view = StalledCache(parts.cache, self.env, stalls, body)
        self.origin_view = StalledOrigin(parts.origin, self.env, stalls)
        self.origin_view.reads.after = self.origin_view.writes.after = scenario.warmup
        return dataclasses.replace(parts, cache=self.cache_view, origin=self.origin_view)

    def warmup_over(self, parts: Parts) -> int:
        if self.cache_view is not None:
            self.cache_view.times.reset()
        return super().warmup_over(parts)

    async def final_state(self, parts: Parts) -> FinalState:
        state = await super().final_state(parts)
        if self.cache_view is not None and self.origin_view is not None:
            state.fields.update(self.cache_view.times.summary())
            state.fields.update(self.origin_view.reads.summary("origin_read"))
            state.fields.update(self.origin_view.writes.summary("origin_write"))
            state.fields["stall_share"] = self.fit.share
        return state
