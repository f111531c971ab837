"""The client loop: the same async code drives every backend.

It issues the scenario's request stream to the strategies (one per app
instance), times each request from its intended start (open loop: the
Poisson arrival time, so queueing delay is charged to the request as
YCSB's "intended" mode does; closed loop: when the client issued it),
acknowledges writes to the oracle and hands everything to the recorder.
Only the Runtime is used, never asyncio or SimPy directly.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from lab.core import Key, Origin, Runtime, Versioned
from lab.core.errors import BackendError
from lab.metrics.oracle import Oracle
from lab.metrics.recorder import Recorder
from lab.patterns import Strategy
from lab.sampling import Sampler
from lab.workload.stream import Request, TimedRequest

HITS = frozenset({"cache", "near"})
"""Read sources that count as cache hits (the shared cache or an instance's near cache)."""


class MeteredOrigin:
    """Wraps the origin to count its calls by time (origin load), so backends never
    measure themselves."""

    def __init__(self, origin: Origin, rt: Runtime, recorder: Recorder) -> None:
        self._origin = origin
        self._now = rt.now
        self._recorder = recorder
        self._read_times = recorder.origin_read_times
        self._write_times = recorder.origin_write_times
        self._loading: dict[Key, int] = {}

    async def read(self, key: Key) -> Versioned:
        """Also tracks how many reads of one key are at the origin at once (a stampede)."""
        now = self._now()
        self._read_times.append(now)
        loading = self._loading
        concurrent = loading[key] = loading.get(key, 0) + 1
        recorder = self._recorder
        if concurrent > recorder.origin_same_key_max and now >= recorder.warmup:
            recorder.origin_same_key_max = concurrent
        try:
            return await self._origin.read(key)
        finally:
            left = loading[key] - 1
            if left:
                loading[key] = left
            else:
                del loading[key]  # memory stays bounded by the reads in flight

    async def write(self, key: Key, value: Versioned | None = None) -> Versioned:
        self._write_times.append(self._now())
        return await self._origin.write(key, value)


class ClientLoop:
    """Runs a request stream against per-instance strategies and records the outcome."""

    def __init__(
        self,
        rt: Runtime,
        strategies: list[Strategy],
        oracle: Oracle,
        recorder: Recorder,
        *,
        end_time: float | None,
        gauges: Callable[[], dict[str, float]] | None = None,
        interval: float = 1.0,
    ) -> None:
        self.rt = rt
        self.strategies = strategies
        self.oracle = oracle
        self.recorder = recorder
        self.end_time = end_time if end_time is not None else float("inf")
        self.gauges = gauges
        self.interval = interval
        self.issued = 0
        self._running = True
        self._inflight = 0
        self._arrivals_done = False
        self._finished = rt.queue()
        # what is still running, so the recorder can close finished intervals (`settle`)
        self._client_starts: list[float] = []  # closed loop: each client's current start
        self._open_starts: dict[int, int] = {}  # open loop: requests in flight per interval
        self._next_start = math.inf  # open loop: the intended start of the next request

    async def serve(self, strategy: Strategy, is_write: bool, key: Key, intended: float) -> None:
        """One request, start to finish; backend failures count as errors, bugs propagate."""
        rt = self.rt
        start = rt.now()
        try:
            if is_write:
                stored = await strategy.writer.write(key)
                end = rt.now()
                self.oracle.ack(key, stored.version, end)
                self.recorder.write(intended, end)
            else:
                got = await strategy.reader.read(key)
                self.recorder.read(
                    intended, start, rt.now(), got.source in HITS, key, got.value.version
                )
        except BackendError:
            self.recorder.error(intended)

    async def _serve_open(self, strategy: Strategy, is_write: bool, key: Key, t: float) -> None:
        await self.serve(strategy, is_write, key, t)
        starts, slot = self._open_starts, int(t // self.interval)
        left = starts[slot] - 1
        if left:
            starts[slot] = left
        else:
            del starts[slot]
        self._inflight -= 1
        if self._arrivals_done and self._inflight == 0:
            self._finished.put(None)

    async def open_loop(self, requests: Iterator[TimedRequest]) -> None:
        """Poisson arrivals: every request starts at its intended time, whatever is in flight."""
        rt = self.rt
        now, sleep, spawn = rt.now, rt.sleep, rt.spawn
        strategies = self.strategies
        instances = len(strategies)
        end = self.end_time
        serve = self._serve_open
        starts, interval = self._open_starts, self.interval
        issued = 0
        for t, is_write, key in requests:
            if t >= end:
                break
            self._next_start = t
            delay = t - now()
            if delay > 0:
                await sleep(delay)
            self._inflight += 1
            slot = int(t // interval)
            starts[slot] = starts.get(slot, 0) + 1
            spawn(serve(strategies[issued % instances], is_write, key, t))
            issued += 1
        self.issued = issued
        self._next_start = math.inf
        self._arrivals_done = True
        if self._inflight:
            await self._finished.get()

    async def _closed_client(
        self, index: int, next_request: Callable[[], Request], think: Sampler | None
    ) -> None:
        rt = self.rt
        now, sleep = rt.now, rt.sleep
        strategy = self.strategies[index % len(self.strategies)]
        read, write = strategy.reader.read, strategy.writer.write
        record_read, record_write = self.recorder.read, self.recorder.write
        record_error, ack = self.recorder.error, self.oracle.ack
        end = self.end_time
        starts = self._client_starts
        # the body of serve(), inlined: this loop is the simulator's hot path
        try:
            while True:
                t = now()
                if t >= end:
                    return
                starts[index] = t
                try:
                    is_write, key = next_request()
                except StopIteration:
                    return
                try:
                    if is_write:
                        stored = await write(key)
                        done = now()
                        ack(key, stored.version, done)
                        record_write(t, done)
                    else:
                        got = await read(key)
                        record_read(t, t, now(), got.source in HITS, key, got.value.version)
                except BackendError:
                    record_error(t)
                if think is not None:
                    await sleep(think())
        finally:
            starts[index] = math.inf
            self._finished.put(None)

    async def closed_loop(
        self, requests: Iterator[Request], clients: int, think: Sampler | None
    ) -> None:
        """`clients` clients, each issuing its next request when the previous one ends."""
        next_request = requests.__next__
        self._client_starts[:] = [self.rt.now()] * clients
        for i in range(clients):
            self.rt.spawn(self._closed_client(i, next_request, think))
        for _ in range(clients):
            await self._finished.get()

    def running_since(self) -> float:
        """The earliest intended start of a request not yet recorded (now if none)."""
        earliest = min(self.rt.now(), self._next_start)
        if self._client_starts:
            earliest = min(earliest, *self._client_starts)
        if self._open_starts:
            earliest = min(earliest, min(self._open_starts) * self.interval)
        return earliest

    async def ticker(self) -> None:
        """At every interval boundary: samples backend gauges (evictions, cache size) and
        lets the recorder close the intervals no running request started in."""
        while self._running:
            await self.rt.sleep(self.interval)
            if self._running:
                if self.gauges is not None:
                    self.recorder.gauge(self.rt.now(), **self.gauges())
                self.recorder.settle(self.running_since())

    async def run(self, drive: Awaitable[Any]) -> None:
        """Run the workload `drive` with the ticker alongside; stop the ticker after."""
        self.rt.spawn(self.ticker())
        await drive
        self.recorder.end_time = self.rt.now()
        for strategy in self.strategies:  # drain background work (write-behind queues)
            await strategy.close()
        self._running = False
        if self.gauges is not None:
            self.recorder.gauge_final(self.rt.now(), **self.gauges())
