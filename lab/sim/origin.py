"""The simulated database: versioned rows, sampled latency and a connection limit.

`concurrency` workers serve requests first come, first served (an M/G/c
queue kept as a heap of the times each worker becomes free), so when the
origin saturates, requests queue and tail latency explodes as it does in
life. A read sees the data as of the moment a worker starts it; a write
becomes visible when it commits, at the end of its service.
"""

from __future__ import annotations

import heapq
from collections.abc import Generator
from types import coroutine
from typing import Any

import simpy
from simpy.events import Event

from lab.core import Key, Versioned
from lab.sampling import Sampler
from lab.sim.bridge import wake_after


class SimOrigin:
    """Source of truth for the simulator (an Origin)."""

    def __init__(
        self,
        env: simpy.Environment,
        *,
        value_size: int,
        read_latency: Sampler,
        write_latency: Sampler,
        concurrency: int,
    ) -> None:
        self.env = env
        self.value_size = value_size
        self._read_latency = read_latency
        self._write_latency = write_latency
        self._free_at = [0.0] * concurrency
        self._rows: dict[Key, Versioned] = {}
        self._initial = Versioned(0, value_size)

    def _start(self, now: float, service: float) -> float:
        """Book the earliest free worker; return when the request starts."""
        free = heapq.heappop(self._free_at)
        start = now if now > free else free
        heapq.heappush(self._free_at, start + service)
        return start

    @coroutine
    def read(self, key: Key) -> Generator[Event, Any, Versioned]:
        env = self.env
        now = env._now
        service = self._read_latency()
        start = self._start(now, service)
        if start > now:
            yield wake_after(env, start - now)
        row = self._rows.get(key, self._initial)
        yield wake_after(env, service)
        return row

    @coroutine
    def write(self, key: Key, value: Versioned | None = None) -> Generator[Event, Any, Versioned]:
        env = self.env
        now = env._now
        service = self._write_latency()
        start = self._start(now, service)
        yield wake_after(env, start + service - now)
        current = self._rows.get(key, self._initial)
        if value is None:
            row = self._rows[key] = Versioned(current.version + 1, self.value_size)
        elif value.version > current.version:
            row = self._rows[key] = Versioned(value.version, value.size)
        else:
            row = current  # a newer version was committed first: keep it
        return row

    def version(self, key: Key) -> int:
        """The committed version of `key` (for end-of-run checks such as lost writes)."""
        return self._rows.get(key, self._initial).version

    def versions(self) -> dict[Key, int]:
        return {k: v.version for k, v in self._rows.items()}
