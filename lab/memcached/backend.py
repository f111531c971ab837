"""The memcached backend: one cell against real memcached servers the lab starts.

`lab.runner.run_cell` does what every backend shares; this backend supplies
the servers (`lab.memcached.server`, one per topology node, with the
scenario's `topology.memcached` settings), the Cache (`MemcachedCache`:
emcache per node, ketama across them), the origin (SQLite or PostgreSQL,
`lab.origins`) and the gauges (``stats``). What memcached lacks is refused
before anything starts (replication, Redis Cluster slots, a key-count
capacity) or skipped by its capabilities (no pub/sub: a near cache with
bus invalidation). Durations are wall time: a 30 s scenario takes 30 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, ClassVar, TypeVar

from lab.aio import AsyncioRuntime, run_bounded
from lab.aio.faults import Action, FaultSchedule
from lab.backend import Backend, CellSkipped, FaultHandlers, FinalState, NodeKeys, Parts
from lab.codec import decode
from lab.core import Versioned
from lab.core.capabilities import Capability
from lab.core.errors import OriginUnavailable
from lab.harness import resilient
from lab.memcached.binaries import find_memcached
from lab.memcached.cache import MemcachedCache
from lab.memcached.control import Control
from lab.memcached.faults import FAULTS, MemcachedFaults, Nodes
from lab.memcached.gauges import MemcachedGauges
from lab.memcached.server import MemcachedServer, Options
from lab.origins import RealOrigin, latency_from_env, make_origin
from lab.processes.binaries import Binary
from lab.processes.errors import ServerNotFound
from lab.processes.server import ServerGroup, start_many
from lab.redis.binaries import find_server_binary
from lab.redis.bus import RedisBus
from lab.redis.server import RedisServer
from lab.scenario import Cell, Fault, MemcachedSpec, Scenario
from lab.workload.values import run_value_size

T = TypeVar("T")

POOL_SIZE = 64
"""Connections per node at most (closed loop: one per client, up to this)."""
CLIENT_TIMEOUT = 1.0
DRAIN_GRACE = 30.0
LAG_PROBE = 0.01
EVICTIONS = ("lru", "memcached-slru")


def options_of(spec: MemcachedSpec | None) -> Options:
    """The command-line options of a scenario's `topology.memcached` block."""
    spec = spec or MemcachedSpec()
    return Options(
        memory_mib=spec.memory >> 20,
        threads=spec.threads,
        growth_factor=spec.growth_factor,
        min_chunk=spec.min_chunk,
        slab_automove=spec.slab_automove,
    )


def refusal_of(scenario: Scenario) -> str | None:
    """What memcached cannot do as the scenario says (before any server starts)."""
    topo = scenario.topology
    if topo.replicas:
        return "memcached has no server-side replication: set topology.replicas: 0"
    if topo.sharding == "slots":
        return "hash slots are Redis Cluster's: memcached clients shard with ketama or modulo"
    if topo.capacity is not None:
        return (
            "memcached is sized in memory, not keys: drop topology.capacity and set "
            "topology.memcached.memory"
        )
    if topo.eviction not in EVICTIONS:
        return f"memcached evicts by its segmented LRU per slab class, not {topo.eviction!r}"
    return None


class MemcachedBackend:
    """Real memcached servers the lab starts (`lab.backend.Backend`)."""

    name: ClassVar[str] = "memcached"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.TTL, Capability.NX, Capability.INCR, Capability.SET_IF_EQUAL}
    )
    """No PUBSUB (memcached has none). SET_IF_EQUAL only for a key and its own lease,
    which lives in the key's item (`lab.memcached.cache`)."""
    faults: ClassVar[FaultHandlers[MemcachedFaults, Action]] = FAULTS

    def __init__(
        self,
        *,
        binary: Binary | None = None,
        emulate_origin_latency: bool | None = None,
        client_timeout: float = CLIENT_TIMEOUT,
    ) -> None:
        """`client_timeout`: the cache command timeout unless the strategy's
        `client.timeout` applies (tests on a loaded machine raise it)."""
        self.binary = binary
        self.client_timeout = client_timeout
        self.emulate_origin_latency = (
            latency_from_env() if emulate_origin_latency is None else emulate_origin_latency
        )
        self.scenario: Scenario | None = None
        self.servers: ServerGroup[MemcachedServer] = ServerGroup()
        self.bus_server: RedisServer | None = None
        self.bus: RedisBus | None = None
        self.cache: MemcachedCache | None = None
        self.origin: RealOrigin | None = None
        self.gauges: MemcachedGauges | None = None
        self.faults_log: list[tuple[float, str]] | None = None
        self.lags: list[float] = []
        self.notes: list[str] = []

    @classmethod
    def describe(cls) -> str:
        try:
            binary = find_memcached()
        except ServerNotFound as exc:
            return f"not available: {exc}"
        return f"real memcached servers the lab starts ({binary.label}: {binary.path})"

    def refusal(self, scenario: Scenario, cell: Cell) -> str | None:
        return refusal_of(scenario) or self.faults.refusal(scenario.faults)

    def execute(
        self, scenario: Scenario, cell: Cell, body: Callable[[Parts], Coroutine[Any, Any, T]]
    ) -> T:
        try:
            binary = self.binary = self.binary or find_memcached()
        except ServerNotFound as exc:
            raise CellSkipped(str(exc)) from None
        self.scenario = scenario
        spec = scenario.topology.memcached or MemcachedSpec()
        self.servers = ServerGroup(
            MemcachedServer(options_of(spec), binary=binary) for _ in range(scenario.topology.nodes)
        )
        try:
            if spec.bus == "redis":
                self._start_bus()
            start_many(self.servers)
            return run_bounded(self._in_loop(scenario, cell, body))
        finally:
            self.servers.stop()
            if self.bus_server is not None:
                self.bus_server.stop()

    def _start_bus(self) -> None:
        """`memcached.bus: redis`: a Redis server beside memcached carries pub/sub, so
        this run offers it (memcached itself still declares no pubsub)."""
        try:
            self.bus_server = RedisServer(binary=find_server_binary()).start()
        except ServerNotFound as exc:
            raise CellSkipped(f"memcached.bus: redis needs a Redis server: {exc}") from None
        setattr(self, "capabilities", type(self).capabilities | {Capability.PUBSUB})  # noqa: B010

    async def _in_loop(
        self, scenario: Scenario, cell: Cell, body: Callable[[Parts], Coroutine[Any, Any, T]]
    ) -> T:
        async with contextlib.AsyncExitStack() as stack:
            parts = await self._parts(scenario, cell, stack)
            return await body(parts)

    async def _parts(
        self, scenario: Scenario, cell: Cell, stack: contextlib.AsyncExitStack
    ) -> Parts:
        spec = scenario.strategies[cell.strategy]
        pool_size = max(1, min(scenario.workload.arrivals.clients or POOL_SIZE, POOL_SIZE))
        origin = self.origin = make_origin(
            scenario.origin,
            value_size=run_value_size(scenario.keyspace, cell.seed),
            seed=cell.seed,
            emulate_latency=self.emulate_origin_latency,
            network_rtt=scenario.topology.network.rtt,
        )
        stack.push_async_callback(origin.close)
        cache = self.cache = MemcachedCache(
            [server.address for server in self.servers],
            sharding=scenario.topology.sharding,
            keys=scenario.keyspace.keys,
            timeout=spec.client.timeout if resilient(scenario, cell) else self.client_timeout,
            max_connections=pool_size,
        )
        stack.push_async_callback(cache.close)
        if self.bus_server is not None:
            bus = self.bus = RedisBus(
                [self.bus_server.address], loss=scenario.topology.bus.loss, seed=cell.seed
            )
            stack.push_async_callback(bus.close)
        gauges = self.gauges = MemcachedGauges(self.servers)
        stack.callback(gauges.close)
        try:
            await origin.open()
        except OriginUnavailable as exc:
            raise CellSkipped(str(exc)) from None
        logging.getLogger("emcache").setLevel(logging.ERROR)  # faults: expected failures
        await cache.connect(pool_size)
        return Parts(AsyncioRuntime(), cache, origin, self.bus, gauges)

    def schedule_faults(
        self, parts: Parts, faults: Sequence[Fault]
    ) -> Coroutine[Any, Any, None] | None:
        if not faults:
            return None
        runtime = parts.runtime
        assert isinstance(runtime, AsyncioRuntime) and self.origin is not None
        context = MemcachedFaults(runtime, Nodes(self.servers), self.origin)
        self.faults_log = context.log
        return FaultSchedule(faults, context, FAULTS.actions).run(runtime)

    async def run(self, parts: Parts, workload: Coroutine[Any, Any, None]) -> None:
        """Wall time from the first arrival until the workload ends (or the drain
        grace after a timed run's end passes)."""
        runtime, cache, gauges, scenario = parts.runtime, self.cache, self.gauges, self.scenario
        assert isinstance(runtime, AsyncioRuntime)
        assert cache is not None and gauges is not None and scenario is not None
        if self.bus is not None:
            await self.bus.start()
        runtime.restart_clock()
        cache.measure_ops_after(time.perf_counter() + scenario.warmup)
        gauges.on_poll = cache.op_times.fold
        grace = max(DRAIN_GRACE, scenario.duration or 0.0)
        timeout = scenario.duration + grace if scenario.duration is not None else None
        runtime.spawn(self._watch_driver(runtime))
        try:
            await runtime.run_async(workload, timeout)
        except TimeoutError:
            self.notes.append(f"requests still in flight {grace:.0f}s after the end were abandoned")
        if self.faults_log is not None:
            self.notes.extend(f"at {t:.2f}s: {what}" for t, what in self.faults_log)

    async def _watch_driver(self, runtime: AsyncioRuntime) -> None:
        """How late the event loop wakes up: the load generator's own delay."""
        while True:
            t = runtime.now()
            await asyncio.sleep(LAG_PROBE)
            self.lags.append(runtime.now() - t - LAG_PROBE)

    def warmup_over(self, parts: Parts) -> int:
        assert self.gauges is not None
        self.gauges.poll()
        return self.gauges.evictions

    async def final_state(self, parts: Parts) -> FinalState:
        gauges, cache, origin = self.gauges, self.cache, self.origin
        assert gauges is not None and cache is not None and origin is not None
        gauges.poll()
        fields: dict[str, Any] = dict(cache.op_times.summary())
        fields["simulated_time"] = None
        fields["driver_lag_p99"] = _p99(self.lags)
        fields["deployment"] = f"lab memcached x{len(self.servers)}"
        fields["memcached_malloced"] = gauges.malloced()
        fields["connections_max"] = sum(gauges.connections)
        fields["origin_latency_emulated"] = self.emulate_origin_latency
        binary = self.binary
        return FinalState(
            evictions=gauges.evictions,
            cache_keys=sum(gauges.keys),
            cache_memory=sum(gauges.memory),
            origin_versions=await origin.versions(),
            fields=fields,
            versions={
                "server": binary.label if binary is not None else None,
                "emcache": _package_version("emcache"),
                "origin": origin.server_version,
            },
            notes=self.notes,
        )

    async def inventory(self, parts: Parts) -> list[NodeKeys]:
        return [_node_keys(server) for server in self.servers]


def _node_keys(server: MemcachedServer) -> NodeKeys:
    """A node's key names (``lru_crawler metadump``) and a reader (one GET of many)."""
    with Control(server.address) as control:
        names = control.keys()

    async def read(wanted: list[str]) -> list[Versioned | None]:
        with Control(server.address) as control:
            found = control.get(wanted)
        return [decode(found[n]) if n in found else None for n in wanted]

    return NodeKeys(names, read)


def _p99(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return max(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 0.0)


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


_CONFORMS: type[Backend] = MemcachedBackend
"""mypy checks here that the class implements the protocol."""
