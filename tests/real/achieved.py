"""The schedule a real run actually achieved: when each request really started.

Why: on a busy machine the Python load generator falls behind its open-loop
schedule (measured beside two CPU hogs: requests meant for 0.6 s went out after
1.0 s). A fault window is real wall time, so the requests it catches are those
*started* inside it, not those *meant* for it. Tests that compare a real run with
the simulator, or count what a fault window caught, translate the real windows
into the run's intended timeline through these start times: the simulator is then
given the window the real run actually exposed to its requests, whatever the speed
of the machine, and no tolerance has to absorb the generator's lag.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

import lab.client
import lab.harness
import lab.redis.cache
from lab.core import Key
from lab.metrics.recorder import Recorder
from lab.patterns import Strategy


@dataclass
class Achieved:
    """(intended start, actual start) of every request issued, in issue order, and
    each request's outcome by its intended start ("hit", "miss", "write", "error")."""

    issued: list[tuple[float, float]] = field(default_factory=list)
    outcomes: dict[float, str] = field(default_factory=dict)
    clock: Callable[[], float] | None = None
    service: dict[float, float] = field(default_factory=dict)
    """Each read's time from its real start to its end, by intended start: its latency
    without the generator's own lag."""
    answered: list[tuple[float, int]] = field(default_factory=list)
    """(time, node) of every cache command a node answered: when a restarted node
    really served the run's clients again."""
    cache_errors: list[float] = field(default_factory=list)
    """When each cache error was counted (the run's clock): a timeout is counted when it
    fires, its operation started up to the client timeout before."""

    def first_answer(self, node: int, after: float) -> float:
        """When `node` first answered a command sent by the run at or after `after`."""
        times = [t for t, n in self.answered if n == node and t >= after]
        assert times, f"node {node} never answered after {after:.3f}s"
        return min(times)

    def intended_at(self, wall: float) -> float:
        """The intended start of the first request really started at or after `wall`
        (requests start in issue order, so actual starts are sorted)."""
        starts = [actual for _, actual in self.issued]
        i = bisect.bisect_left(starts, wall)
        if i == len(self.issued):
            return self.issued[-1][0] + (wall - self.issued[-1][1]) if self.issued else wall
        return self.issued[i][0]

    def started_between(self, begin: float, end: float) -> list[str]:
        """Outcomes of the requests really started in [begin, end) (wall time)."""
        return [
            self.outcomes[intended]
            for intended, actual in self.issued
            if begin <= actual < end and intended in self.outcomes
        ]

    def behind(self) -> float:
        """How late the latest request started (s): the generator's worst lag."""
        return max((actual - intended for intended, actual in self.issued), default=0.0)


@contextmanager
def achieved(monkeypatch: pytest.MonkeyPatch) -> Iterator[Achieved]:
    """Record the achieved schedule of the open-loop runs made inside the block."""
    record = Achieved()
    serve = lab.client.ClientLoop.serve

    async def timed_serve(
        loop: lab.client.ClientLoop, strategy: Strategy, is_write: bool, key: Key, t: float
    ) -> None:
        record.clock = loop.rt.now
        record.issued.append((t, loop.rt.now()))
        await serve(loop, strategy, is_write, key, t)

    class OutcomeRecorder(Recorder):
        def read(
            self, intended: float, start: float, end: float, hit: bool, key: Key, version: int
        ) -> None:
            record.outcomes[intended] = "hit" if hit else "miss"
            record.service[intended] = end - start
            super().read(intended, start, end, hit, key, version)

        def write(self, intended: float, end: float) -> None:
            record.outcomes[intended] = "write"
            super().write(intended, end)

        def error(self, intended: float) -> None:
            record.outcomes[intended] = "error"
            super().error(intended)

        def count(self, name: str, n: int = 1) -> None:
            if name == "cache_errors" and record.clock is not None:
                record.cache_errors.extend([record.clock()] * n)
            super().count(name, n)

    plain, cluster = (
        lab.redis.cache.RedisCache._plain_call,
        lab.redis.cache.RedisCache._cluster_call,
    )

    def answered(call: Callable[..., Any]) -> Callable[..., Any]:
        async def noted(cache: lab.redis.cache.RedisCache, index: int, *args: Any) -> Any:
            sent = record.clock() if record.clock is not None else -math.inf
            reply = await call(cache, index, *args)
            record.answered.append((sent, index))
            return reply

        return noted

    with monkeypatch.context() as patch:
        patch.setattr(lab.redis.cache.RedisCache, "_plain_call", answered(plain))
        patch.setattr(lab.redis.cache.RedisCache, "_cluster_call", answered(cluster))
        patch.setattr(lab.client.ClientLoop, "serve", timed_serve)
        patch.setattr(lab.harness, "Recorder", OutcomeRecorder)
        yield record


def fault_times(backend: Any) -> list[tuple[float, str]]:
    """The real run's fault log: (wall time on the run's clock, what happened)."""
    log: list[tuple[float, str]] | None = backend.faults_log
    assert log is not None, "the run scheduled no faults"
    return list(log)
