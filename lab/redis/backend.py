"""The redis backend: one cell against real servers the lab starts itself, or the user's.

`lab.runner.run_cell` does what every backend shares (the same request
stream, ClientLoop, Oracle, Recorder and MeteredOrigin, the strategy code
unchanged); this backend supplies the Runtime (asyncio, wall time), the
Cache (`RedisCache` over the servers of `lab.redis.site`) and the Origin
(SQLite or PostgreSQL, `lab.origins`). Servers are always stopped
(try/finally, plus the orphan protection of `lab.processes`).

A scenario's durations are wall time here: a 30 s scenario takes 30 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, ClassVar, TypeVar

import redis

from lab.aio import AsyncioRuntime, run_bounded
from lab.aio.faults import Action, FaultSchedule
from lab.backend import Backend, CellSkipped, FaultHandlers, FinalState, NodeKeys, Parts
from lab.codec import decode
from lab.core import Versioned
from lab.core.capabilities import Capability
from lab.core.errors import OriginUnavailable
from lab.harness import resilient
from lab.origins import RealOrigin, latency_from_env, make_origin
from lab.processes.errors import ServerNotFound
from lab.redis.binaries import ServerBinary, find_server_binary
from lab.redis.bus import RedisBus
from lab.redis.cache import SCRIPTS, RedisCache, warm_payload
from lab.redis.capacity import CapacityController
from lab.redis.deployment import Target
from lab.redis.faults import FAULTS, RedisFaults
from lab.redis.gauges import ServerGauges
from lab.redis.site import (
    POLICIES,
    REDIS_POLICIES,
    Site,
    check_target,
    configure,
    open_site,
    samples_for,
)
from lab.scenario import Cell, Fault, Scenario
from lab.workload.values import run_value_size, value_sizes

T = TypeVar("T")

POOL_SIZE = 64
"""Connections per node at most (closed loop: one per client, up to this)."""
LAG_PROBE = 0.01
"""Seconds between probes of the event loop's lag (the load generator's health)."""
DRIVER_LAG_WARN = 0.005
"""Event loop lag p99 above which the run gets a note: the generator itself was late."""
CLIENT_TIMEOUT = 1.0
"""Cache command timeout (s) unless the strategy's `client.timeout` is given."""
DRAIN_GRACE = 30.0
"""Seconds requests still in flight at the end of a timed run may take to finish."""


class RedisBackend:
    """Real Redis-protocol servers (`lab.backend.Backend`).

    `target` runs on servers the user names (`--redis-url` / `--redis-cluster`)
    instead of starting some; `binary` picks the server executable;
    `emulate_origin_latency` (default: CACHELAB_ORIGIN_LATENCY, on) adds the
    scenario's origin latency to the real database; `node_history` keeps every node's
    key count at every gauge poll (`gauges.history`).
    """

    name: ClassVar[str] = "redis"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.TTL,
            Capability.NX,
            Capability.INCR,
            Capability.SET_IF_EQUAL,
            Capability.PUBSUB,
        }
    )
    faults: ClassVar[FaultHandlers[RedisFaults, Action]] = FAULTS

    def __init__(
        self,
        *,
        target: Target | None = None,
        binary: ServerBinary | None = None,
        emulate_origin_latency: bool | None = None,
        node_history: bool = False,
    ) -> None:
        self.target = target
        self.node_history = node_history
        self.binary = binary
        self.emulate_origin_latency = (
            latency_from_env() if emulate_origin_latency is None else emulate_origin_latency
        )
        self.scenario: Scenario | None = None
        self.seed = 0
        self.site: Site | None = None
        self.cache: RedisCache | None = None
        self.bus: RedisBus | None = None
        self.origin: RealOrigin | None = None
        self.gauges: ServerGauges | None = None
        self.controller: CapacityController | None = None
        self.faults_log: list[tuple[float, str]] | None = None
        self.lags: list[float] = []
        self.notes: list[str] = []

    @classmethod
    def describe(cls) -> str:
        try:
            binary = find_server_binary()
            first = f"real servers the lab starts ({binary.label}: {binary.path})"
        except Exception as exc:  # any reason it cannot run is worth printing
            first = f"not available: {exc}"
        return (
            f"{first}\n"
            "sharding: slots -> a Redis Cluster (replicas: real failover);\n"
            "or your own: run --redis-url URL / --redis-cluster HOST:PORT,..."
        )

    def refusal(self, scenario: Scenario, cell: Cell) -> str | None:
        """What real servers cannot do for this scenario (checked before any server starts)."""
        topo, target = scenario.topology, self.target
        unhandled = self.faults.unhandled(scenario.faults)
        if unhandled:
            return f"faults {', '.join(unhandled)} cannot be injected on real servers yet"
        cluster = topo.sharding == "slots" if target is None else bool(target.cluster)
        if topo.replicas and not cluster:
            return (
                "replicas on real servers come from Redis Cluster: set topology.sharding: slots"
                if target is None
                else "replicas need a Redis Cluster: use --redis-cluster"
            )
        if topo.capacity is not None and topo.eviction not in POLICIES:
            return (
                f"eviction {topo.eviction!r} has no Redis equivalent "
                f"(Redis offers {', '.join(REDIS_POLICIES)} for a capacity)"
            )
        if target is not None and not target.allow_destructive:
            refused = _refused_on_others(scenario)
            if refused:
                return refused
        return "; ".join(self.faults.refusals(scenario.faults, target)) or None

    # -- provisioning and parts ---------------------------------------------

    def execute(
        self, scenario: Scenario, cell: Cell, body: Callable[[Parts], Coroutine[Any, Any, T]]
    ) -> T:
        if self.target is None:
            try:
                self.binary = self.binary or find_server_binary()
            except ServerNotFound as exc:
                raise CellSkipped(str(exc)) from None
        self.scenario = scenario
        with open_site(scenario, cell, self.target, self.binary) as site:
            self.site = site
            self.notes.extend(site.notes)
            return run_bounded(self._in_loop(scenario, cell, site, body))

    async def _in_loop(
        self,
        scenario: Scenario,
        cell: Cell,
        site: Site,
        body: Callable[[Parts], Coroutine[Any, Any, T]],
    ) -> T:
        """The parts live on the run's event loop: built, used and closed there."""
        async with contextlib.AsyncExitStack() as stack:
            parts = await self._parts(scenario, cell, site, stack)
            result = await body(parts)
        return result

    async def _parts(
        self, scenario: Scenario, cell: Cell, site: Site, stack: contextlib.AsyncExitStack
    ) -> Parts:
        """Cache, bus, origin, gauges and capacity controller; each closed by `stack`
        even if closing another one fails."""
        deployment, spec = site.deployment, scenario.strategies[cell.strategy]
        pool_size = max(1, min(scenario.workload.arrivals.clients or POOL_SIZE, POOL_SIZE))
        self.seed = cell.seed
        origin = self.origin = make_origin(
            scenario.origin,
            value_size=run_value_size(scenario.keyspace, cell.seed),
            seed=cell.seed,
            emulate_latency=self.emulate_origin_latency,
            network_rtt=scenario.topology.network.rtt,
        )
        stack.push_async_callback(origin.close)
        cache = self.cache = RedisCache(
            list(deployment.addresses),
            sharding=scenario.topology.sharding,
            keys=scenario.keyspace.keys,
            max_connections=pool_size,
            timeout=spec.client.timeout if resilient(scenario, cell) else CLIENT_TIMEOUT,
            slot_owner=deployment.slot_owner,
            connection=deployment.connection,
            translate=site.translate,
        )
        stack.push_async_callback(cache.close)
        bus = self.bus = RedisBus(
            deployment.bus_addresses(),
            kill_all=deployment.owned,
            translate=site.bus_translate,
            loss=scenario.topology.bus.loss,
            seed=cell.seed,
        )
        stack.push_async_callback(bus.close)
        if site.calibrations:
            controller = CapacityController(
                list(deployment.addresses),
                site.calibrations,
                connection=deployment.connection,
                connections=pool_size,
            )
            self.controller = controller
            stack.push_async_callback(controller.close)
        gauges = self.gauges = ServerGauges(deployment)
        if self.node_history:
            gauges.history = []
        stack.callback(gauges.close)
        await self._open(origin, cache, pool_size)
        return Parts(AsyncioRuntime(), cache, origin, bus, gauges)

    async def _open(self, origin: RealOrigin, cache: RedisCache, pool_size: int) -> None:
        try:
            await origin.open()
        except OriginUnavailable as exc:
            raise CellSkipped(str(exc)) from None
        await cache.connect(pool_size)

    # -- faults ----------------------------------------------------------------

    def schedule_faults(
        self, parts: Parts, faults: Sequence[Fault]
    ) -> Coroutine[Any, Any, None] | None:
        if not faults:
            return None
        site, runtime = self._site, parts.runtime
        assert isinstance(runtime, AsyncioRuntime)
        assert self.origin is not None and self.bus is not None
        context = RedisFaults(
            runtime,
            site.deployment,
            self.origin,
            self._reconfigure,
            self.bus,
            self.seed,
            proxy=site.proxy,
            placement=site.placement,
        )
        self.faults_log = context.log
        return FaultSchedule(faults, context, FAULTS.actions).run(runtime)

    @property
    def _site(self) -> Site:
        assert self.site is not None, "execute() opens the site first"
        return self.site

    def _reconfigure(self, index: int) -> None:
        """Re-apply the eviction settings to a restarted or promoted node (CONFIG SET is
        not kept across restarts; a replica had its primary's calibrated limit)."""
        site, controller = self._site, self.controller
        if not site.calibrations or site.policy is None:
            return
        address = site.deployment.addresses[index]
        if controller is not None:
            controller.retarget(index, address)
        limit = (
            controller.takeover_limit(index)
            if controller is not None
            else site.calibrations[index].maxmemory
        )
        assert self.scenario is not None
        configure(address, site.deployment, site.policy, limit, samples_for(self.scenario))

    def _warm_size(self) -> int:
        """The warm ECHO's payload for this run's values and server (`warm_payload`)."""
        assert self.scenario is not None
        return warm_payload(
            _reply_size(self.scenario, self.seed), self._site.deployment.server_label
        )

    # -- the run -----------------------------------------------------------------

    async def run(self, parts: Parts, workload: Coroutine[Any, Any, None]) -> None:
        """From t = 0 (the first arrival's intended start) until the workload ends, or
        the drain grace after a timed run's end passes."""
        runtime, cache, gauges, bus = parts.runtime, self.cache, self.gauges, self.bus
        assert isinstance(runtime, AsyncioRuntime)
        assert cache is not None and gauges is not None and bus is not None
        scenario = self.scenario
        assert scenario is not None
        await bus.start()
        if self.controller is not None:  # every connection of the run open before the
            gauges.poll()  # limits are set: a new one costs a Redis 7.0 server ~37 KiB
            await self.controller.adjust()  # room for the connections now open
            await cache.touch_all(self._warm_size())
            await self.controller.prime(SCRIPTS)
        runtime.restart_clock()
        cache.measure_ops_after(time.perf_counter() + scenario.warmup)
        gauges.on_poll = cache.op_times.fold
        gauges.clock = runtime.now
        grace = max(DRAIN_GRACE, scenario.duration or 0.0)
        timeout = scenario.duration + grace if scenario.duration is not None else None
        try:
            await runtime.run_async(self._beside(runtime, workload), timeout)
        except TimeoutError:
            self.notes.append(
                f"requests still in flight {grace:.0f}s after "
                "the end were abandoned (the origin or cache could not keep up)"
            )
        self._after_run(runtime)

    async def _beside(self, runtime: AsyncioRuntime, workload: Coroutine[Any, Any, None]) -> None:
        """The workload, with the load generator's lag probe and the capacity controller."""
        runtime.spawn(self._watch_driver(runtime))
        if self.controller is not None:
            runtime.spawn(self.controller.run())
            assert self.cache is not None
            assert self.scenario is not None
            runtime.spawn(self.cache.keep_warm(self._warm_size()))
        await workload

    async def _watch_driver(self, runtime: AsyncioRuntime) -> None:
        """How late the event loop wakes up: the load generator's own delay."""
        while True:
            t = runtime.now()
            await asyncio.sleep(LAG_PROBE)
            self.lags.append(runtime.now() - t - LAG_PROBE)

    def _after_run(self, runtime: AsyncioRuntime) -> None:
        if self.faults_log is not None:
            self.notes.extend(f"at {t:.2f}s: {what}" for t, what in self.faults_log)
        if runtime.stuck:
            self.notes.append(f"{runtime.stuck} task(s) ignored cancellation at the end")
        lag = _lag_summary(self.lags)
        if lag["driver_lag_p99"] > DRIVER_LAG_WARN:
            self.notes.append(
                f"the load generator fell behind (event loop lag p99 "
                f"{lag['driver_lag_p99'] * 1000:.1f} ms): latencies include "
                "its own queueing; lower the rate or free CPU (other processes?)"
            )

    def warmup_over(self, parts: Parts) -> int:
        assert self.gauges is not None
        self.gauges.poll()
        return self.gauges.evictions

    # -- the end -------------------------------------------------------------------

    async def final_state(self, parts: Parts) -> FinalState:
        gauges, cache, origin, site = self.gauges, self.cache, self.origin, self._site
        assert gauges is not None and cache is not None and origin is not None
        gauges.poll()
        if self.controller is not None:
            await self.controller.adjust()  # the data held at the end
        fields: dict[str, Any] = dict(cache.op_times.summary())
        fields["simulated_time"] = None
        fields.update(_lag_summary(self.lags))
        fields.update(self._deployment_fields(site, list(gauges.keys)))
        fields["origin_latency_emulated"] = self.emulate_origin_latency
        return FinalState(
            evictions=gauges.evictions,
            cache_keys=sum(gauges.keys),
            cache_memory=sum(gauges.memory),
            origin_versions=await origin.versions(),
            fields=fields,
            versions={
                "server": site.deployment.server_label,
                "redis-py": redis.__version__,
                "hiredis": _package_version("hiredis"),
                "origin": origin.server_version,
            },
            notes=self.notes,
        )

    def _deployment_fields(self, site: Site, keys_end: list[int]) -> dict[str, Any]:
        calibrations = site.calibrations
        return {
            "deployment": (
                f"lab {'cluster' if site.deployment.cluster else 'shards'}"
                if self.target is None
                else self.target.label
            ),
            "capacity_maxmemory": list(self.controller.limits) if self.controller else None,
            "capacity_budget": [c.budget for c in calibrations] or None,
            "capacity_bytes_per_key": [round(c.bytes_per_key, 1) for c in calibrations] or None,
            "capacity_marginal_bytes_per_key": [round(c.marginal_per_key, 1) for c in calibrations]
            or None,
            "capacity_data_end": list(self.controller.data) if self.controller else None,
            "capacity_keys_end": keys_end if calibrations else None,
            "capacity_adjustments": self.controller.adjustments if self.controller else 0,
        }

    async def inventory(self, parts: Parts) -> list[NodeKeys]:
        gauges = self.gauges
        assert gauges is not None
        return [_node_keys(gauges.control(i)) for i in range(len(self._site.deployment))]


def _refused_on_others(scenario: Scenario) -> str | None:
    """What the lab may not do to servers it did not start (without --allow-destructive)."""
    refused = sorted({f.kind for f in scenario.faults if f.destructive})
    if refused:
        return (
            f"faults {', '.join(refused)} would act on servers the lab did not start: "
            "pass --allow-destructive to let it"
        )
    if scenario.topology.capacity is not None:
        return (
            "topology.capacity sets maxmemory on the servers (CONFIG SET): "
            "pass --allow-destructive to let it, or drop the capacity"
        )
    return None


def _node_keys(control: redis.Redis) -> NodeKeys:
    """A node's key names (SCAN) and a reader: GETs in one round trip (not MGET: a
    cluster node refuses keys of several slots in one command)."""

    async def read(names: list[str]) -> list[Versioned | None]:
        if not names:
            return []
        pipe = control.pipeline(transaction=False)
        for name in names:
            pipe.get(name)
        return [None if raw is None else decode(_raw(raw)) for raw in pipe.execute()]

    return NodeKeys([_raw(n).decode() for n in control.scan_iter(count=1000)], read)


def _reply_size(scenario: Scenario, seed: int) -> int:
    """The value size a warm connection's reply buffer is kept for: the size, or the 99th
    percentile of a distribution of sizes."""
    sizes = value_sizes(scenario.keyspace, seed)
    return sizes.constant if sizes.constant is not None else sizes.size_at(0.99)


def _raw(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _lag_summary(lags: list[float]) -> dict[str, float]:
    if not lags:
        return {"driver_lag_p99": 0.0, "driver_lag_max": 0.0}
    ordered = sorted(lags)
    return {
        "driver_lag_p99": max(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 0.0),
        "driver_lag_max": max(ordered[-1], 0.0),
    }


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


__all__ = ["RedisBackend", "check_target"]


_CONFORMS: type[Backend] = RedisBackend
"""mypy checks here that the class implements the protocol."""
