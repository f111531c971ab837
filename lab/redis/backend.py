"""The redis backend: one cell against real servers the lab starts itself.

Assembly mirrors `lab.runner.run_sim`: the same request stream, ClientLoop,
Oracle, Recorder and MeteredOrigin, and the strategy code unchanged; only the
Runtime (asyncio, wall time), the Cache (`RedisCache` over fresh servers from
`lab.redis.server`) and the Origin (SQLite or PostgreSQL) differ. Servers are
always stopped (try/finally, plus the orphan protection of `servers.py`).

A scenario's durations are wall time here: a 30 s scenario takes 30 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import time
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import redis

from lab.aio import AsyncioRuntime, run_bounded
from lab.client import ClientLoop
from lab.codec import decode
from lab.core.errors import OriginUnavailable
from lab.harness import CellSkipped, build_harness
from lab.netfault import FaultProxy
from lab.origins import latency_from_env, make_origin
from lab.processes.errors import ServerNotFound
from lab.redis.binaries import ServerBinary, find_server_binary
from lab.redis.bus import RedisBus
from lab.redis.cache import RedisCache
from lab.redis.capacity import Calibration, CapacityController, calibrate
from lab.redis.deployment import (
    Deployment,
    DeploymentError,
    Target,
    connect_external,
    start_local,
)
from lab.redis.faults import DESTRUCTIVE, FaultSchedule, unsupported
from lab.runner import Progress, RunResult, _identity, progress_hooks
from lab.sampling import rng_for, sampler
from lab.scenario import BusDelay, Cell, ClientSpec, Latency, Partition, Scenario
from lab.sharding import key_slot
from lab.workload.stream import RequestStream

OFFERS = frozenset({"ttl", "nx", "incr", "set_if_equal", "pubsub"})
"""Capabilities this backend provides to strategy parts."""

POLICIES = {"lru": "allkeys-lru", "random": "allkeys-random"}
"""Scenario eviction -> maxmemory-policy (FIFO has no Redis equivalent)."""

MAXMEMORY_SAMPLES = 10
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


def _prepare(scenario: Scenario, cell: Cell, target: Target | None) -> tuple[bool, str | None]:
    """(cluster?, maxmemory-policy) for this cell; CellSkipped for what cannot run."""
    topo = scenario.topology
    missing_faults = unsupported(scenario.faults)
    if missing_faults:
        raise CellSkipped(
            f"faults {', '.join(missing_faults)} cannot be injected on real servers yet"
        )
    cluster = topo.sharding == "slots" if target is None else bool(target.cluster)
    if topo.replicas and not cluster:
        raise CellSkipped(
            "replicas on real servers come from Redis Cluster: set topology.sharding: slots"
            if target is None
            else "replicas need a Redis Cluster: use --redis-cluster"
        )
    policy: str | None = None
    if topo.capacity is not None:
        policy = POLICIES.get(topo.eviction)
        if policy is None:
            raise CellSkipped(
                f"eviction {topo.eviction!r} has no Redis equivalent "
                f"(Redis offers {', '.join(sorted(POLICIES))} for a capacity)"
            )
    if target is not None and not target.allow_destructive:
        refused = sorted({f.kind for f in scenario.faults if f.kind in DESTRUCTIVE})
        if refused:
            raise CellSkipped(
                f"faults {', '.join(refused)} would act on servers the lab did not start: "
                "pass --allow-destructive to let it"
            )
        if topo.capacity is not None:
            raise CellSkipped(
                "topology.capacity sets maxmemory on the servers (CONFIG SET): "
                "pass --allow-destructive to let it, or drop the capacity"
            )
    if target is not None and any(f.kind == "node_crash" for f in scenario.faults):
        raise CellSkipped("node_crash needs servers the lab started: it cannot restart others'")
    return cluster, policy


def run_redis(
    scenario: Scenario,
    cell: Cell,
    progress: Progress | None = None,
    *,
    emulate_origin_latency: bool | None = None,
    binary: ServerBinary | None = None,
    target: Target | None = None,
) -> RunResult:
    """Run a cell on fresh local servers, or on `target`; raise CellSkipped for what
    cannot run here."""
    topo = scenario.topology
    spec = scenario.strategies[cell.strategy]
    cluster, policy = _prepare(scenario, cell, target)
    if target is None:
        try:
            binary = binary or find_server_binary()
        except ServerNotFound as exc:
            raise CellSkipped(str(exc)) from None
    if emulate_origin_latency is None:
        emulate_origin_latency = latency_from_env()

    wall_start = time.perf_counter()
    notes: list[str] = []
    if target is None:
        assert binary is not None
        window = max((f.duration for f in scenario.faults), default=0.0)
        deployment = start_local(
            topo.nodes, topo.replicas, cluster=cluster, binary=binary, max_fault_window=window
        )
        if cluster:
            notes.append(f"Redis Cluster: {topo.nodes} primaries x {1 + topo.replicas} servers")
    else:
        try:
            deployment = connect_external(target, topo.nodes)
        except DeploymentError as exc:
            raise CellSkipped(str(exc)) from None
        notes.append(f"on {target.label} (servers the lab did not start)")
    # latency and partition faults go through a real TCP proxy in front of their nodes;
    # bus_delay through one in front of the bus subscriber (the last of the targets)
    proxied = sorted({f.node for f in scenario.faults if isinstance(f, Latency | Partition)})
    targets = [deployment.addresses[node] for node in proxied]
    if any(isinstance(f, BusDelay) for f in scenario.faults):
        targets.append(deployment.bus_addresses()[0])
    proxy: FaultProxy | None = None
    try:
        if targets:
            proxy = FaultProxy(targets)
            proxy.start()
        calibrations: list[Calibration] = []
        controls = [deployment.control(i) for i in range(len(deployment))]
        try:
            if not deployment.owned:
                try:
                    _require_empty(controls, deployment, target)
                except DeploymentError as exc:
                    raise CellSkipped(str(exc)) from None
            if topo.capacity is not None and policy is not None:
                for i, control in enumerate(controls):
                    calibrations.append(
                        calibrate(
                            control,
                            topo.capacity,
                            scenario.keyspace.value_size,
                            policy=policy,
                            samples=MAXMEMORY_SAMPLES,
                            ttl=spec.ttl,
                            key_prefix=_calibration_prefix(deployment, i),
                        )
                    )
                    for address in deployment.replica_addresses(i):
                        _configure(address, deployment, policy, calibrations[-1].maxmemory)
                held = [c.held for c in calibrations]
                notes.append(
                    f"capacity {topo.capacity} keys/node -> maxmemory "
                    f"{[c.maxmemory for c in calibrations]} bytes "
                    f"(~{calibrations[0].bytes_per_key:.0f} B/key; held {held} keys when full)"
                )
            for control in controls:
                control.config_resetstat()
            result = _Run(
                scenario,
                cell,
                deployment,
                progress,
                emulate_origin_latency,
                calibrations,
                policy,
                proxy,
                proxied,
            )
            try:
                summary, timeseries = result.execute()
            finally:
                if not deployment.owned:
                    _empty(deployment)
        finally:
            for control in controls:
                control.close()
    finally:
        try:
            if proxy is not None:
                proxy.close()
        finally:
            deployment.stop()
    notes.extend(result.notes)
    summary.update(result.driver_lag)
    summary["wall_time"] = time.perf_counter() - wall_start
    summary.update(_identity(scenario, cell))
    summary["versions"].update(
        {
            "server": deployment.server_label,
            "redis-py": redis.__version__,
            "hiredis": _package_version("hiredis"),
            "origin": result.origin_version,
        }
    )
    summary["deployment"] = (
        f"lab {'cluster' if deployment.cluster else 'shards'}" if target is None else target.label
    )
    summary["capacity_maxmemory"] = [c.maxmemory for c in calibrations] or None
    summary["capacity_keys_end"] = result.keys_end if calibrations else None
    summary["capacity_adjustments"] = result.capacity_adjustments
    summary["origin_latency_emulated"] = emulate_origin_latency
    if summary["requests"] == 0:
        notes.append("no request started after the warm-up: make warmup shorter than the run")
    return RunResult(
        cell,
        summary,
        timeseries,
        notes,
        distributions=result.distributions,
        staleness_curve=result.staleness_curve,
    )


def _calibration_prefix(deployment: Deployment, index: int) -> str:
    """Keys that land on node `index`: a cluster node only takes keys of its slots, so
    calibration keys carry a hash tag of one of them."""
    owners = deployment.slot_owner
    if owners is None:
        return ""
    for n in range(100_000):
        tag = f"{{c{n}}}"
        if owners[key_slot(tag)] == index:
            return tag
    raise AssertionError(f"no hash tag found for node {index}")


def _configure(
    address: tuple[str, int], deployment: Deployment, policy: str, maxmemory: int
) -> None:
    """The eviction settings of a primary on one of its replicas (for after a failover)."""
    client = redis.Redis(host=address[0], port=address[1], socket_timeout=5.0)
    try:
        client.config_set("maxmemory-policy", policy)
        client.config_set("maxmemory-samples", MAXMEMORY_SAMPLES)
        client.config_set("maxmemory", maxmemory)
    finally:
        client.close()


def check_target(target: Target, scenario: Scenario) -> None:
    """Before any run: `target` answers, has the scenario's number of nodes, and its
    databases are empty (or may be flushed). Raises DeploymentError (one line)."""
    deployment = connect_external(target, scenario.topology.nodes)
    controls = [deployment.control(i) for i in range(len(deployment))]
    try:
        if not target.allow_destructive:
            _require_empty(controls, deployment, target)
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise DeploymentError(f"cannot reach {target.label}: {exc}") from None
    finally:
        for control in controls:
            control.close()


def _require_empty(
    controls: list[redis.Redis], deployment: Deployment, target: Target | None
) -> None:
    """Someone else's database must start empty (the run starts cold and is emptied
    afterwards); `--allow-destructive` flushes it instead."""
    assert target is not None
    for i, control in enumerate(controls):
        held = int(control.dbsize())
        if not held:
            continue
        if target.allow_destructive:
            control.flushdb()
            continue
        host, port = deployment.addresses[i]
        raise DeploymentError(
            f"{host}:{port} holds {held} keys: the lab needs an empty database "
            "(pick another with redis://host:port/<db>) or --allow-destructive to flush it"
        )


def _empty(deployment: Deployment) -> None:
    """Remove what the run left in someone else's (empty at the start) database."""
    for i in range(len(deployment)):
        with contextlib.suppress(redis.RedisError, OSError):
            control = deployment.control(i)
            try:
                names = list(control.scan_iter(count=1000))
                for start in range(0, len(names), 1000):
                    if deployment.cluster:  # one slot per command in a cluster
                        for name in names[start : start + 1000]:
                            control.unlink(name)
                    else:
                        control.unlink(*names[start : start + 1000])
            finally:
                control.close()


def _raw(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def orphaned_versioned_keys(controls: list[redis.Redis]) -> tuple[int, int]:
    """(keys, bytes) cached under an older namespace version than the current one, as
    the simulator counts them: `<ns>:version` counters, `<ns>:v<n>:...` entries."""
    names: list[list[str]] = []
    current: dict[str, int] = {}
    for control in controls:
        on_node = [_raw(n).decode() for n in control.scan_iter(count=1000)]
        names.append(on_node)
        counters = [n for n in on_node if n.endswith(":version")]
        values = _get_many(control, counters)
        for name, raw in zip(counters, values, strict=True):
            if raw is not None:
                current[name[: -len(":version")]] = decode(_raw(raw)).version
    keys = size = 0
    for control, on_node in zip(controls, names, strict=True):
        stale = []
        for name in on_node:
            namespace, sep, rest = name.partition(":v")
            version = rest.partition(":")[0]
            if sep and version.isdigit() and int(version) < current.get(namespace, 0):
                stale.append(name)
        for raw in _get_many(control, stale):
            if raw is not None:
                keys += 1
                size += decode(_raw(raw)).size
    return keys, size


def _get_many(control: redis.Redis, names: list[str]) -> list[Any]:
    """GET of many keys in one round trip (not MGET: a cluster node refuses keys of
    several slots in one command)."""
    pipe = control.pipeline(transaction=False)
    for name in names:
        pipe.get(name)
    return pipe.execute() if names else []


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


class _Gauges:
    """Evictions (INFO stats evicted_keys) and cache size (DBSIZE), summed over nodes.

    Called synchronously by the client loop's ticker once per interval: a
    millisecond of blocking per second, for exact sampling times. A node that
    is down or paused is not asked (it would block the loop) and keeps its last
    value; a restarted node's eviction counter starts again from 0, so it is
    carried over. After a failover node i is asked at its new address.
    """

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        n = len(deployment)
        self._controls: list[tuple[tuple[str, int], redis.Redis] | None] = [None] * n
        self.evicted = [0] * n
        self._seen = [0] * n
        self.keys = [0] * n
        self.memory = [0] * n
        self.connections = [0] * n
        self.on_poll: Callable[[], None] | None = None

    def control(self, index: int) -> redis.Redis:
        address = self.deployment.addresses[index]
        held = self._controls[index]
        if held is None or held[0] != address:
            if held is not None:
                held[1].close()
                self._seen[index] = 0  # another server: its own counter
            held = (address, self.deployment.control(index))
            self._controls[index] = held
        return held[1]

    def poll(self) -> None:
        for i in range(len(self.deployment)):
            if not self.deployment.reachable(i):
                continue
            try:
                control = self.control(i)
                info = control.info()  # one round trip: stats, memory, clients
                counter = int(info["evicted_keys"])
                self.memory[i] = int(info["used_memory"])
                self.connections[i] = int(info["connected_clients"])
                self.keys[i] = int(control.dbsize())
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                continue
            self.evicted[i] += counter - self._seen[i] if counter >= self._seen[i] else counter
            self._seen[i] = counter

    @property
    def evictions(self) -> int:
        return sum(self.evicted)

    def close(self) -> None:
        for held in self._controls:
            if held is not None:
                held[1].close()

    def __call__(self) -> dict[str, float]:
        self.poll()
        if self.on_poll is not None:
            self.on_poll()
        return {
            "evictions": self.evictions,
            "cache_keys": sum(self.keys),
            "cache_memory": sum(self.memory),
            "connections": sum(self.connections),
        }


class _Run:
    """One cell's asyncio part: built and run inside `asyncio.run`."""

    def __init__(
        self,
        scenario: Scenario,
        cell: Cell,
        deployment: Deployment,
        progress: Progress | None,
        emulate_origin_latency: bool,
        calibrations: list[Calibration],
        policy: str | None,
        proxy: FaultProxy | None = None,
        proxied: Sequence[int] = (),
    ) -> None:
        self.scenario = scenario
        self.cell = cell
        self.deployment = deployment
        self.gauges = _Gauges(deployment)
        self.proxy = proxy
        self.proxied = {node: i for i, node in enumerate(proxied)}
        self.translate = {}
        self.bus_translate = {}
        self.bus_via: int | None = None
        if proxy is not None:
            for node, address in zip(proxied, proxy.addresses, strict=False):
                self.translate[deployment.addresses[node]] = address
            if len(proxy.addresses) > len(proxied):  # the bus subscriber's proxy
                self.bus_via = len(proxied)
                self.bus_translate[deployment.bus_addresses()[0]] = proxy.addresses[-1]
        self.progress = progress
        self.emulate_origin_latency = emulate_origin_latency
        self.calibrations = calibrations
        self.policy = policy
        self.controller: CapacityController | None = None
        self.capacity_adjustments = 0
        self.keys_end: list[int] = []
        self.driver_lag: dict[str, float] = {}
        self.notes: list[str] = []
        self.origin_version = ""
        self.distributions: pd.DataFrame | None = None
        self.staleness_curve: pd.DataFrame | None = None

    def execute(self) -> tuple[dict[str, Any], Any]:
        return run_bounded(self._main())

    def _reconfigure(self, index: int) -> None:
        """Re-apply the eviction settings to a restarted or promoted node (CONFIG SET is
        not kept across restarts; a replica had its primary's calibrated limit)."""
        if not self.calibrations or self.policy is None:
            return
        limit = (
            self.controller.limits[index]
            if self.controller is not None
            else self.calibrations[index].maxmemory
        )
        if self.controller is not None:
            self.controller.retarget(index, self.deployment.addresses[index])
        control = self.deployment.control(index)
        try:
            control.config_set("maxmemory-policy", self.policy)
            control.config_set("maxmemory-samples", MAXMEMORY_SAMPLES)
            control.config_set("maxmemory", limit)
        finally:
            control.close()

    async def _main(self) -> tuple[dict[str, Any], Any]:
        scenario, cell = self.scenario, self.cell
        deployment = self.deployment
        addresses = list(deployment.addresses)
        controller = (
            CapacityController(addresses, self.calibrations, connection=deployment.connection)
            if self.calibrations
            else None
        )
        self.controller = controller
        seed = cell.seed
        topo = scenario.topology
        spec = scenario.strategies[cell.strategy]
        arrivals = scenario.workload.arrivals
        pool_size = max(1, min(arrivals.clients or POOL_SIZE, POOL_SIZE))
        resilient = bool(scenario.faults) or spec.client != ClientSpec()
        cache = RedisCache(
            addresses,
            sharding=topo.sharding,
            keys=scenario.keyspace.keys,
            max_connections=pool_size,
            timeout=spec.client.timeout if resilient else CLIENT_TIMEOUT,
            slot_owner=deployment.slot_owner,
            connection=deployment.connection,
            translate=self.translate,
        )
        bus = RedisBus(
            deployment.bus_addresses(), kill_all=deployment.owned, translate=self.bus_translate
        )
        origin = make_origin(
            scenario.origin,
            value_size=scenario.keyspace.value_size,
            seed=seed,
            emulate_latency=self.emulate_origin_latency,
        )
        try:
            try:
                await origin.open()
            except OriginUnavailable as exc:
                raise CellSkipped(str(exc)) from None
            self.origin_version = origin.server_version
            await cache.connect(pool_size)
            if controller is not None:
                await controller.prime(pool_size)
            rt = AsyncioRuntime()
            try:
                harness = build_harness(
                    scenario,
                    cell,
                    rt=rt,
                    cache=cache,
                    origin=origin,
                    bus=bus,
                    offers=OFFERS,
                    backend="redis",
                )
            except CellSkipped as why:
                raise CellSkipped(f"{why} yet") from None
            oracle, recorder, strategies = harness.oracle, harness.recorder, harness.strategies
            await bus.start()
            loop = ClientLoop(
                rt,
                strategies,
                oracle,
                recorder,
                end_time=scenario.duration,
                gauges=self.gauges,
                interval=scenario.metrics.interval,
            )
            on_chunk, finish_progress = progress_hooks(scenario, rt.now, self.progress)
            stream = RequestStream(scenario, seed, on_chunk=on_chunk)
            if arrivals.process == "poisson":
                assert arrivals.rate is not None
                drive = loop.open_loop(stream.timed(arrivals.rate))
            else:
                assert arrivals.clients is not None
                think = (
                    sampler(arrivals.think, rng_for(seed, "workload.think"))
                    if arrivals.think is not None and arrivals.think.mean_value > 0
                    else None
                )
                drive = loop.closed_loop(stream.requests(), arrivals.clients, think)
            evictions_at_warmup: list[int] = []

            async def snapshot_at_warmup() -> None:
                await rt.sleep(scenario.warmup)
                self.gauges.poll()
                evictions_at_warmup.append(self.gauges.evictions)

            lags: list[float] = []

            async def watch_driver() -> None:
                """How late the event loop wakes up: the load generator's own delay."""
                while True:
                    t = rt.now()
                    await asyncio.sleep(LAG_PROBE)
                    lags.append(rt.now() - t - LAG_PROBE)

            faults = FaultSchedule(
                scenario.faults,
                deployment,
                origin,
                rt,
                self._reconfigure,
                bus=bus,
                seed=seed,
                proxy=self.proxy,
                proxied=self.proxied,
                bus_via=self.bus_via,
            )

            async def main() -> None:
                rt.spawn(watch_driver())
                if scenario.faults:
                    rt.spawn(faults.run())
                if controller is not None:
                    rt.spawn(controller.run())
                if scenario.warmup > 0:
                    rt.spawn(snapshot_at_warmup())
                await loop.run(drive)

            grace = max(DRAIN_GRACE, scenario.duration or 0.0)
            timeout = scenario.duration + grace if scenario.duration is not None else None
            rt.restart_clock()  # t = 0: the first arrival's intended start is measured from here
            cache.measure_ops_after(time.perf_counter() + scenario.warmup)
            self.gauges.on_poll = cache.op_times.fold
            try:
                await rt.run_async(main(), timeout)
            except TimeoutError:
                self.notes.append(
                    f"requests still in flight {grace:.0f}s after "
                    "the end were abandoned (the origin or cache could not keep up)"
                )
                recorder.end_time = rt.now()
            finish_progress()
            self.notes.extend(f"at {t:.2f}s: {what}" for t, what in faults.log)
            if rt.stuck:
                self.notes.append(f"{rt.stuck} task(s) ignored cancellation at the end")
            self.driver_lag = _lag_summary(lags)
            if self.driver_lag["driver_lag_p99"] > DRIVER_LAG_WARN:
                self.notes.append(
                    f"the load generator fell behind (event loop lag p99 "
                    f"{self.driver_lag['driver_lag_p99'] * 1000:.1f} ms): latencies include "
                    "its own queueing; lower the rate or free CPU (other processes?)"
                )
            if scenario.duration is not None:
                recorder.end_time = max(scenario.duration, scenario.warmup)
            summary = recorder.summary()
            self.gauges.poll()
            summary["evictions"] = self.gauges.evictions - (
                evictions_at_warmup[0] if evictions_at_warmup else 0
            )
            summary["cache_keys"] = sum(self.gauges.keys)
            summary["cache_memory"] = sum(self.gauges.memory)
            summary.update(cache.op_times.summary())
            self.keys_end = list(self.gauges.keys)
            summary["lost_writes"] = oracle.lost_writes(await origin.versions())
            if spec.read == "versioned":
                summary["orphaned_keys"], summary["orphaned_bytes"] = orphaned_versioned_keys(
                    [self.gauges.control(i) for i in range(len(deployment))]
                )
            summary["simulated_time"] = None
            self.distributions = recorder.distributions()
            self.staleness_curve = recorder.staleness_curve()
            return summary, recorder.timeseries()
        finally:
            # every resource is closed even if closing another one fails
            async with contextlib.AsyncExitStack() as stack:
                stack.push_async_callback(origin.close)
                stack.push_async_callback(cache.close)
                stack.push_async_callback(bus.close)
                if controller is not None:
                    self.capacity_adjustments = controller.adjustments
                    stack.push_async_callback(controller.close)
                stack.callback(self.gauges.close)


__all__ = ["OFFERS", "check_target", "run_redis"]
