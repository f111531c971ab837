"""The simulated database: versioned rows, sampled latency and a connection limit.

- A request travels half a network RTT to the database, waits for one of
  `concurrency` workers (first come, first served: an M/G/c queue kept as a
  heap of the times each worker becomes free, so an overloaded origin queues
  and its tail latency explodes as in life), is served for a sampled service
  time, and its reply travels the other half RTT.
- A read sees the data as of the moment a worker starts it (a snapshot).
- A write commits at the end of its service, but not before the previous
  write of the same row committed (a row lock), so versions are assigned in
  arrival order and commit in that order. Its reply arrives half an RTT after
  the commit: that gap is where a writer's next step (setting the cache) can
  be overtaken by another writer's, as in production.

Every operation is one SimPy event: commit times are known when a write
arrives, so each row keeps its recent (commit time, value) history and a
read picks the value committed by its own start time when it completes.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Generator
from types import coroutine
from typing import Any

import simpy

from lab.core import Key, SizeOf, Versioned, size_of
from lab.core.errors import OriginUnavailable
from lab.sampling import ZERO, Sampler
from lab.sim.bridge import Wait

HISTORY = 16
HORIZON = 10.0
"""Commits kept per row: at most HISTORY, and none superseded more than HORIZON seconds
ago, so memory does not grow with the number of writes. A read sees the right snapshot
unless more than HISTORY writes of its row commit while it is under way, or it has been
under way for more than HORIZON seconds; then it sees the oldest value kept."""


class SimOrigin:
    """Source of truth for the simulator (an Origin)."""

    def __init__(
        self,
        env: simpy.Environment,
        *,
        value_size: int | SizeOf,
        read_latency: Sampler,
        write_latency: Sampler,
        concurrency: int,
        rtt: Sampler = ZERO,
    ) -> None:
        self.env = env
        self.value_size = value_size
        self._size = size_of(value_size)
        self._read_latency = read_latency
        self._write_latency = write_latency
        self._rtt = rtt
        self._free_at = [0.0] * concurrency
        self._slow = 1.0  # origin_slow multiplies service times
        self.down = False  # origin_down refuses requests
        # per key: [(commit time, value), ...], oldest first, pruned as time passes
        self._rows: dict[Key, list[tuple[float, Versioned]]] = {}
        # one shared initial row when every value has the same size
        self._initial = Versioned(0, value_size) if isinstance(value_size, int) else None

    def slow(self, factor: float) -> None:
        self._slow = factor

    def go_down(self) -> None:
        self.down = True

    def recover(self) -> None:
        self._slow, self.down = 1.0, False

    def _refuse(self) -> Generator[Wait, Any, None]:
        yield self._rtt()
        raise OriginUnavailable("origin: connection refused")

    def _start(self, arrive: float, service: float) -> float:
        """Book the earliest free worker; return when the request starts."""
        free = heapq.heappop(self._free_at)
        start = arrive if arrive > free else free
        heapq.heappush(self._free_at, start + service)
        return start

    def _as_of(self, key: Key, t: float) -> Versioned:
        history = self._rows.get(key)
        if history is None:
            return self._initial_row(key)
        for commit, value in reversed(history):
            if commit <= t:
                return value
        return self._initial_row(key)  # before the first commit (once trimmed: at -inf)

    def _initial_row(self, key: Key) -> Versioned:
        initial = self._initial
        return initial if initial is not None else Versioned(0, self._size(key))

    @coroutine
    def read(self, key: Key) -> Generator[Wait, Any, Versioned]:
        env = self.env
        now = env._now
        if self.down:
            yield from self._refuse()
        half = self._rtt() * 0.5
        service = self._read_latency() * self._slow
        start = self._start(now + half, service)
        yield start + service + half - now
        return self._as_of(key, start)

    @coroutine
    def write(self, key: Key, value: Versioned | None = None) -> Generator[Wait, Any, Versioned]:
        env = self.env
        now = env._now
        if self.down:
            yield from self._refuse()
        half = self._rtt() * 0.5
        service = self._write_latency() * self._slow
        end = self._start(now + half, service) + service
        history = self._rows.get(key)
        if history is None:
            history = self._rows[key] = []
        latest_commit, latest = history[-1] if history else (0.0, self._initial_row(key))
        commit = end if end > latest_commit else latest_commit  # the row lock
        if value is None:
            row = Versioned(latest.version + 1, self._size(key))
        elif value.version > latest.version:
            row = Versioned(value.version, value.size)
        else:
            row = latest  # a newer version is already committed (or queued): keep it
        if row is not latest:
            history.append((commit, row))
            horizon = now - HORIZON
            if len(history) > HISTORY or (len(history) > 1 and history[1][0] <= horizon):
                while len(history) > HISTORY or (len(history) > 1 and history[1][0] <= horizon):
                    del history[0]
                # the oldest kept value now stands for everything before it
                history[0] = (-math.inf, history[0][1])
        yield commit + half - now
        return row

    def version(self, key: Key) -> int:
        """The newest committed version of `key` (for end-of-run checks such as lost writes)."""
        history = self._rows.get(key)
        return history[-1][1].version if history else 0

    def versions(self) -> dict[Key, int]:
        return {key: history[-1][1].version for key, history in self._rows.items() if history}
