"""The redis backend: one cell against real servers the lab starts itself.

Assembly mirrors `lab.runner.run_sim`: the same request stream, ClientLoop,
Oracle, Recorder and MeteredOrigin, and the strategy code unchanged; only the
Runtime (asyncio, wall time), the Cache (`RedisCache` over fresh servers from
`lab.real.servers`) and the Origin (SQLite or PostgreSQL) differ. Servers are
always stopped (try/finally, plus the orphan protection of `servers.py`).

A scenario's durations are wall time here: a 30 s scenario takes 30 s.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import time
from collections.abc import Callable
from typing import Any

import redis

from lab.client import ClientLoop, MeteredOrigin
from lab.core.errors import OriginUnavailable
from lab.core.versions import VersionClock
from lab.metrics.oracle import Oracle
from lab.metrics.recorder import Recorder
from lab.patterns import build_strategy
from lab.real import servers as srv
from lab.real.capacity import Calibration, CapacityController, calibrate
from lab.real.origin import latency_from_env, make_origin
from lab.real.redis_cache import RedisCache
from lab.real.runtime import AsyncioRuntime
from lab.runner import CellSkipped, Progress, RunResult, _identity
from lab.sampling import rng_for, sampler
from lab.scenario import Cell, Scenario
from lab.workload.stream import RequestStream

OFFERS = frozenset({"ttl", "nx", "incr"})
"""Capabilities this backend provides to strategy parts."""

POLICIES = {"lru": "allkeys-lru", "random": "allkeys-random"}
"""Scenario eviction -> maxmemory-policy (FIFO has no Redis equivalent)."""

MAXMEMORY_SAMPLES = 10
POOL_SIZE = 64
"""Connections per node at most (closed loop: one per client, up to this)."""
DRAIN_GRACE = 30.0
"""Seconds requests still in flight at the end of a timed run may take to finish."""


def run_redis(
    scenario: Scenario,
    cell: Cell,
    progress: Progress | None = None,
    *,
    emulate_origin_latency: bool | None = None,
    binary: srv.ServerBinary | None = None,
) -> RunResult:
    """Run a cell on fresh local servers; raise CellSkipped for what cannot run here."""
    topo = scenario.topology
    spec = scenario.strategies[cell.strategy]
    policy: str | None = None
    if topo.capacity is not None:
        policy = POLICIES.get(topo.eviction)
        if policy is None:
            raise CellSkipped(
                f"eviction {topo.eviction!r} has no Redis equivalent "
                f"(Redis offers {', '.join(sorted(POLICIES))} for a capacity)"
            )
    try:
        binary = binary or srv.find_server_binary()
    except srv.ServerNotFound as exc:
        raise CellSkipped(str(exc)) from None
    if emulate_origin_latency is None:
        emulate_origin_latency = latency_from_env()

    wall_start = time.perf_counter()
    notes: list[str] = []
    shards = srv.start_shards(topo.nodes, binary=binary)
    try:
        calibrations: list[Calibration] = []
        controls = [srv._client(s.port, 5.0, decode=False) for s in shards]
        try:
            if topo.capacity is not None and policy is not None:
                for control in controls:
                    calibrations.append(
                        calibrate(
                            control,
                            topo.capacity,
                            scenario.keyspace.value_size,
                            policy=policy,
                            samples=MAXMEMORY_SAMPLES,
                            ttl=spec.ttl,
                        )
                    )
                held = [c.held for c in calibrations]
                notes.append(
                    f"capacity {topo.capacity} keys/node -> maxmemory "
                    f"{[c.maxmemory for c in calibrations]} bytes "
                    f"(~{calibrations[0].bytes_per_key:.0f} B/key; held {held} keys when full)"
                )
            for control in controls:
                control.config_resetstat()
            result = _Run(
                scenario, cell, shards, controls, progress, emulate_origin_latency, calibrations
            )
            summary, timeseries = result.execute()
        finally:
            for control in controls:
                control.close()
    finally:
        shards.stop()
    notes.extend(result.notes)
    summary["wall_time"] = time.perf_counter() - wall_start
    summary.update(_identity(scenario, cell))
    summary["versions"].update(
        {
            "server": binary.label,
            "redis-py": redis.__version__,
            "hiredis": _package_version("hiredis"),
            "origin": result.origin_version,
        }
    )
    summary["capacity_maxmemory"] = [c.maxmemory for c in calibrations] or None
    summary["capacity_keys_end"] = result.keys_end if calibrations else None
    summary["capacity_adjustments"] = result.capacity_adjustments
    summary["origin_latency_emulated"] = emulate_origin_latency
    if summary["requests"] == 0:
        notes.append("no request started after the warm-up: make warmup shorter than the run")
    return RunResult(cell, summary, timeseries, notes)


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


class _Gauges:
    """Evictions (INFO stats evicted_keys) and cache size (DBSIZE), summed over nodes.

    Called synchronously by the client loop's ticker once per interval: a
    millisecond of blocking per second, for exact sampling times. A node that
    does not answer keeps its last value.
    """

    def __init__(self, controls: list[redis.Redis]) -> None:
        self.controls = controls
        self.evicted = [0] * len(controls)
        self.keys = [0] * len(controls)

    def poll(self) -> None:
        for i, control in enumerate(self.controls):
            try:
                self.evicted[i] = int(control.info("stats")["evicted_keys"])
                self.keys[i] = int(control.dbsize())
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                pass

    @property
    def evictions(self) -> int:
        return sum(self.evicted)

    def __call__(self) -> dict[str, float]:
        self.poll()
        return {"evictions": self.evictions, "cache_keys": sum(self.keys)}


class _Run:
    """One cell's asyncio part: built and run inside `asyncio.run`."""

    def __init__(
        self,
        scenario: Scenario,
        cell: Cell,
        shards: srv.ServerGroup,
        controls: list[redis.Redis],
        progress: Progress | None,
        emulate_origin_latency: bool,
        calibrations: list[Calibration],
    ) -> None:
        self.scenario = scenario
        self.cell = cell
        self.shards = shards
        self.gauges = _Gauges(controls)
        self.progress = progress
        self.emulate_origin_latency = emulate_origin_latency
        self.calibrations = calibrations
        self.capacity_adjustments = 0
        self.keys_end: list[int] = []
        self.notes: list[str] = []
        self.origin_version = ""

    def execute(self) -> tuple[dict[str, Any], Any]:
        return asyncio.run(self._main())

    async def _main(self) -> tuple[dict[str, Any], Any]:
        scenario, cell = self.scenario, self.cell
        addresses = [(srv.HOST, s.port) for s in self.shards]
        controller = CapacityController(addresses, self.calibrations) if self.calibrations else None
        seed = cell.seed
        topo = scenario.topology
        spec = scenario.strategies[cell.strategy]
        arrivals = scenario.workload.arrivals
        pool_size = max(1, min(arrivals.clients or POOL_SIZE, POOL_SIZE))
        cache = RedisCache(
            addresses,
            sharding=topo.sharding,
            keys=scenario.keyspace.keys,
            max_connections=pool_size,
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
            oracle = Oracle()
            recorder = Recorder(oracle, interval=scenario.metrics.interval, warmup=scenario.warmup)
            metered = MeteredOrigin(origin, rt, recorder)
            versions = VersionClock()  # shared by all app instances of the run
            strategies = [
                build_strategy(
                    cell.strategy,
                    spec,
                    cache,
                    metered,
                    rt,
                    seed * 1000 + instance,
                    metrics=recorder,
                    value_size=scenario.keyspace.value_size,
                    versions=versions,
                )
                for instance in range(scenario.workload.instances)
            ]
            missing = set().union(*(s.requires for s in strategies)) - OFFERS
            if missing:
                raise CellSkipped(
                    f"strategy needs {', '.join(sorted(missing))}, which the redis backend "
                    "does not offer yet"
                )
            loop = ClientLoop(
                rt,
                strategies,
                oracle,
                recorder,
                end_time=scenario.duration,
                gauges=self.gauges,
                interval=scenario.metrics.interval,
            )
            on_chunk, finish_progress = _progress_hooks(scenario, rt, self.progress)
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

            async def main() -> None:
                if controller is not None:
                    rt.spawn(controller.run())
                if scenario.warmup > 0:
                    rt.spawn(snapshot_at_warmup())
                await loop.run(drive)

            grace = max(DRAIN_GRACE, scenario.duration or 0.0)
            timeout = scenario.duration + grace if scenario.duration is not None else None
            rt.restart_clock()  # t = 0: the first arrival's intended start is measured from here
            try:
                await rt.run_async(main(), timeout)
            except TimeoutError:
                self.notes.append(
                    f"requests still in flight {grace:.0f}s after "
                    "the end were abandoned (the origin or cache could not keep up)"
                )
                recorder.end_time = rt.now()
            finish_progress()
            if scenario.duration is not None:
                recorder.end_time = max(scenario.duration, scenario.warmup)
            summary = recorder.summary()
            self.gauges.poll()
            summary["evictions"] = self.gauges.evictions - (
                evictions_at_warmup[0] if evictions_at_warmup else 0
            )
            summary["cache_keys"] = sum(self.gauges.keys)
            self.keys_end = list(self.gauges.keys)
            summary["lost_writes"] = oracle.lost_writes(await origin.versions())
            summary["simulated_time"] = None
            return summary, recorder.timeseries()
        finally:
            await cache.close()
            await origin.close()
            if controller is not None:
                self.capacity_adjustments = controller.adjustments
                await controller.close()


def _progress_hooks(
    scenario: Scenario, rt: AsyncioRuntime, progress: Progress | None
) -> tuple[Callable[[int], None] | None, Callable[[], None]]:
    """Report progress by requests generated (requests mode) or wall time."""
    if progress is None:
        return None, lambda: None
    report = progress
    generated = [0]

    def on_chunk(n: int) -> None:
        generated[0] += n
        if scenario.requests is not None:
            report(min(generated[0] / scenario.requests, 1.0))
        elif scenario.duration:
            report(min(max(rt.now(), 0.0) / scenario.duration, 1.0))

    return on_chunk, lambda: report(1.0)


__all__ = ["OFFERS", "run_redis"]
