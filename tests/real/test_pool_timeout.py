"""The client timeout bounds a whole cache operation: waiting for one of a node's pooled
connections, (re)connecting, sending and reading the reply, not each step on its own.

A pool of one connection and a paused server (SIGSTOP, the lab's `node_pause`): the
first operation holds the connection until it times out, the others queue for it. Each
must give up within the timeout of its own start, and a strategy's client behaviour
must absorb it as any other cache error (a miss, counted in `cache_errors`)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

from lab.aio.runtime import AsyncioRuntime
from lab.core import Versioned
from lab.core.errors import CacheUnavailable
from lab.patterns.resilience import ClientSpec, ResilientCache
from lab.processes import HOST
from lab.redis.cache import RedisCache
from lab.redis.server import RedisServer

TIMEOUT = 0.3
WAITING = 5
"""Operations at once on the single connection: unbounded waits would take 5 timeouts."""
SLACK = 0.25
"""What a loaded machine may add to a timer that fires late (2 shared busy cores)."""
V = Versioned(7, 64)


class Counts:
    """Metrics that keep the counters (the `Metrics` protocol)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] += n

    def observe(self, name: str, value: float) -> None:
        pass

    def peak(self, name: str, value: float) -> None:
        pass


async def _timed(op: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    start = perf_counter()
    try:
        result = await op()
    except CacheUnavailable as exc:
        result = exc
    return perf_counter() - start, result


def test_waiting_for_a_pooled_connection_counts_against_the_timeout(
    server: RedisServer,
) -> None:
    counts = Counts()

    async def main() -> None:
        cache = RedisCache([(HOST, server.port)], keys=100, timeout=TIMEOUT, max_connections=1)
        try:
            await cache.connect(1)
            for key in range(WAITING):
                await cache.set(key, V)
            rt = AsyncioRuntime()
            resilient = ResilientCache(cache, rt, ClientSpec(timeout=TIMEOUT), counts)
            server.pause()
            try:
                raw = await asyncio.gather(
                    *(_timed(lambda k=k: cache.get(k)) for k in range(WAITING))  # type: ignore[misc]
                )
                absorbed = await asyncio.gather(
                    *(_timed(lambda k=k: resilient.get(k)) for k in range(WAITING))  # type: ignore[misc]
                )
            finally:
                server.resume()
            for took, result in raw:
                assert isinstance(result, CacheUnavailable), result
                assert took <= TIMEOUT + SLACK, [round(t, 3) for t, _ in raw]
            for took, result in absorbed:  # the fallback: a miss, within the timeout
                assert result is None and took <= TIMEOUT + SLACK, absorbed
            # the connection (dropped on its timeout) serves the right replies again
            assert [await cache.get(key) for key in range(WAITING)] == [V] * WAITING
        finally:
            await cache.close()

    asyncio.run(main())
    assert counts.counts["cache_errors"] == WAITING
    assert counts.counts["degraded"] == WAITING


def test_a_blocked_operation_times_out_while_the_next_ones_on_its_pool_complete(
    server: RedisServer,
) -> None:
    """The pool's deadline queue: the oldest operation (a BLPOP that never returns) times
    out at its own deadline while newer ones on the other connection complete behind it;
    its connection is dropped, so its late reply is never read as another's."""

    async def main() -> None:
        cache = RedisCache([(HOST, server.port)], keys=100, timeout=TIMEOUT, max_connections=2)
        try:
            await cache.connect(2)
            for key in range(10):
                await cache.set(key, V)
            pool = cache.nodes[0]

            async def blocked() -> float:
                start = perf_counter()
                try:
                    await pool.call("BLPOP", "lab:never", 0)
                except TimeoutError:
                    return perf_counter() - start
                raise AssertionError("BLPOP on an empty list returned")

            async def gets() -> list[Versioned | None]:
                return [await cache.get(i % 10) for i in range(50)]

            took, got = await asyncio.gather(blocked(), gets())
            assert TIMEOUT - 0.01 <= took <= TIMEOUT + SLACK, took
            assert got == [V] * 50
            assert not pool.ops  # nothing left in flight (done ones forgotten)
            # both connections serve again (the blocked one reconnected), replies in order
            assert await asyncio.gather(*(cache.get(k) for k in range(10))) == [V] * 10
        finally:
            await cache.close()

    asyncio.run(main())
