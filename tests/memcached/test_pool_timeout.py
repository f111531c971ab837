"""memcached: the client timeout bounds a whole cache operation, waiting for a pooled
connection included (emcache times the whole call out: `OpTimeout` around the pool's
checkout and the command), as tests/real/test_pool_timeout.py checks on Redis."""

from __future__ import annotations

import asyncio
from time import perf_counter

from lab.core import Versioned
from lab.core.errors import CacheUnavailable
from lab.memcached.cache import MemcachedCache
from lab.memcached.server import Options, start_nodes
from lab.processes.binaries import Binary

TIMEOUT = 0.3
WAITING = 5
SLACK = 0.25
"""What a loaded machine may add to a timer that fires late (2 shared busy cores)."""
V = Versioned(7, 64)


def test_waiting_for_a_pooled_connection_counts_against_the_timeout(binary: Binary) -> None:
    group = start_nodes(1, Options(memory_mib=8, threads=1), binary=binary)
    server = next(iter(group))

    async def timed_get(cache: MemcachedCache, key: int) -> tuple[float, object]:
        start = perf_counter()
        try:
            result: object = await cache.get(key)
        except CacheUnavailable as exc:
            result = exc
        return perf_counter() - start, result

    async def main() -> None:
        cache = MemcachedCache([server.address], keys=100, timeout=TIMEOUT, max_connections=1)
        try:
            await cache.connect(1)
            for key in range(WAITING):
                await cache.set(key, V)
            server.pause()
            try:
                raw = await asyncio.gather(*(timed_get(cache, k) for k in range(WAITING)))
            finally:
                server.resume()
            for took, result in raw:
                assert isinstance(result, CacheUnavailable), result
                assert took <= TIMEOUT + SLACK, [round(t, 3) for t, _ in raw]
            # no reply of a timed-out operation is read as another's
            assert [await cache.get(key) for key in range(WAITING)] == [V] * WAITING
        finally:
            await cache.close()

    try:
        asyncio.run(main())
    finally:
        group.stop()
