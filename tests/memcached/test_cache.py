"""What the memcached Cache adds or does its own way: touch, the 30-day rule, leases as
placeholders in the item (revoked by a delete), ketama routing as the simulator's."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from lab.core import Versioned
from lab.memcached.cache import MemcachedCache
from lab.memcached.control import Control
from lab.memcached.server import Options, start_nodes
from lab.processes.binaries import Binary
from lab.sharding import key_name, router

V = Versioned(3, 200)


def _on(binary: Binary, nodes: int, body: Callable[[MemcachedCache], Awaitable[None]]) -> None:
    group = start_nodes(nodes, Options(memory_mib=8, threads=1), binary=binary)

    async def main() -> None:
        cache = MemcachedCache([s.address for s in group], keys=1000)
        try:
            await cache.connect(1)
            await body(cache)
        finally:
            await cache.close()

    try:
        asyncio.run(main())
    finally:
        group.stop()


def test_keys_live_on_the_node_ketama_picks_as_in_the_simulator(binary: Binary) -> None:
    route = router("ketama", 3)

    async def body(cache: MemcachedCache) -> None:
        for key in range(60):
            await cache.set(key, V)
        for index, address in enumerate(cache.addresses):
            with Control(address) as control:
                held = set(control.keys())
            assert held == {key_name(k) for k in range(60) if route(key_name(k)) == index}

    _on(binary, 3, body)


def test_touch_and_the_30_day_rule(binary: Binary) -> None:
    async def body(cache: MemcachedCache) -> None:
        assert await cache.touch(1, 10) is False  # absent
        await cache.set(1, V, ttl=0.5)
        assert await cache.touch(1, 40 * 24 * 3600) is True  # absolute time: still there
        await cache.set(2, V, ttl=31 * 24 * 3600)
        await asyncio.sleep(2.1)
        assert await cache.get(1) == V and await cache.get(2) == V
        with Control(cache.addresses[0]) as control:
            item = next(i for i in control.metadump() if i["key"] == "key:2")
        expiry = int(item["exp"])
        assert abs(expiry - (time.time() + 31 * 24 * 3600)) < 10

    _on(binary, 1, body)


def test_a_lease_is_a_placeholder_that_a_delete_revokes(binary: Binary) -> None:
    lease, token = "lease:{key:5}", Versioned(77, 1)

    async def body(cache: MemcachedCache) -> None:
        assert await cache.set(lease, token, ttl=5, nx=True) is True
        assert await cache.set(lease, Versioned(78, 1), ttl=5, nx=True) is False  # held
        assert await cache.get(5) is None  # others see a miss while it loads
        assert await cache.get(lease) == token
        await cache.delete(5)  # a write invalidates the key: the lease is gone with it
        assert await cache.set_if_equal(5, V, None, lease, token) is False
        assert await cache.get(5) is None
        assert await cache.set(lease, token, ttl=5, nx=True) is True  # a new reader's lease
        assert await cache.set_if_equal(5, V, None, lease, token) is True
        assert await cache.get(5) == V and await cache.get(lease) is None
        await cache.delete(lease)  # revoking never deletes a filled value
        assert await cache.get(5) == V
        with pytest.raises(ValueError, match="no atomic operation spans keys"):
            await cache.set_if_equal(5, V, None, "lease:{key:6}", token)

    _on(binary, 1, body)
