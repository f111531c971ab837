"""Run one cell (scenario x strategy x backend x seed) and return its metrics.

The client loop, the oracle and the recorder are the same for every backend;
a backend only supplies a Runtime, a Cache and an Origin.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import simpy

import lab
from lab.client import ClientLoop
from lab.harness import CellSkipped, build_harness
from lab.sampling import rng_for, sampler
from lab.scenario import Cell, Scenario
from lab.sim.bus import SimBus
from lab.sim.cluster import SimCluster
from lab.sim.faults import schedule_faults
from lab.sim.origin import SimOrigin
from lab.sim.runtime import SimRuntime
from lab.workload.stream import RequestStream

BACKENDS = ("sim", "redis")
SIM_CAPABILITIES = frozenset({"ttl", "nx", "incr", "pubsub", "set_if_equal"})
"""What the simulated cache offers; a part's `requires` must be a subset to run."""


@dataclass
class RunResult:
    """What one cell produced: the summary, the timeseries and any notes."""

    cell: Cell
    summary: dict[str, Any]
    timeseries: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    distributions: pd.DataFrame | None = None  # latency / staleness-age histograms
    staleness_curve: pd.DataFrame | None = None  # P(fresh | time since last write)


Progress = Callable[[float], None]


def run_cell(
    scenario: Scenario, cell: Cell, progress: Progress | None = None, target: Any = None
) -> RunResult:
    """Run one cell; `progress` receives the completed fraction (0..1) now and then.
    `target` (a `lab.redis.deployment.Target`) points the redis backend at servers the
    lab did not start."""
    if cell.backend == "sim":
        return run_sim(scenario, cell, progress)
    if cell.backend == "redis":
        try:
            from lab.redis.backend import run_redis  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise CellSkipped("the redis backend is not implemented yet (issue 4)") from None
        result: RunResult = run_redis(scenario, cell, progress, target=target)
        return result
    raise CellSkipped(f"unknown backend {cell.backend!r}")


def run_sim(scenario: Scenario, cell: Cell, progress: Progress | None = None) -> RunResult:
    """Run a cell on the SimPy backend. Deterministic for a given scenario and seed."""
    seed = cell.seed
    wall_start = time.perf_counter()
    env = simpy.Environment()
    rt = SimRuntime(env)
    topo = scenario.topology
    cluster = SimCluster(
        env,
        nodes=topo.nodes,
        capacity=topo.capacity,
        eviction=topo.eviction,
        sharding=topo.sharding,
        keys=scenario.keyspace.keys,
        rtt=sampler(topo.network.rtt, rng_for(seed, "network.rtt")),
        service=sampler(topo.service_time, rng_for(seed, "node.service")),
        seed=seed,
        timeout=scenario.strategies[cell.strategy].client.timeout,
        replicas=topo.replicas,
        replication_lag=sampler(topo.replication_lag, rng_for(seed, "node.replication")),
    )
    origin_spec = scenario.origin
    origin = SimOrigin(
        env,
        value_size=scenario.keyspace.value_size,
        read_latency=sampler(origin_spec.read_latency, rng_for(seed, "origin.read")),
        write_latency=sampler(origin_spec.write_latency, rng_for(seed, "origin.write")),
        concurrency=origin_spec.concurrency,
        rtt=sampler(topo.network.rtt, rng_for(seed, "origin.network")),
    )
    bus = SimBus(
        env,
        rtt=sampler(topo.network.rtt, rng_for(seed, "bus.network")),
        delay=sampler(topo.bus.delay, rng_for(seed, "bus.delay")),
        loss=topo.bus.loss,
        seed=seed,
    )
    schedule_faults(env, scenario.faults, cluster, origin, bus, seed)
    harness = build_harness(
        scenario,
        cell,
        rt=rt,
        cache=cluster,
        origin=origin,
        bus=bus,
        offers=SIM_CAPABILITIES,
        backend="sim",
    )
    oracle, recorder, strategies = harness.oracle, harness.recorder, harness.strategies
    evictions_at_warmup: list[int] = []

    value_size = scenario.keyspace.value_size

    def gauges() -> dict[str, float]:
        cluster.op_times.fold()
        keys = cluster.size
        # the simulator stores no bytes: memory is the values' payload (keys x value_size)
        return {
            "evictions": cluster.evictions,
            "cache_keys": keys,
            "cache_memory": keys * value_size,
        }

    loop = ClientLoop(
        rt,
        strategies,
        oracle,
        recorder,
        end_time=scenario.duration,
        gauges=gauges,
        interval=scenario.metrics.interval,
    )

    on_chunk, finish_progress = progress_hooks(scenario, rt.now, progress)
    stream = RequestStream(scenario, seed, on_chunk=on_chunk)
    arrivals = scenario.workload.arrivals
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

    async def snapshot_at_warmup() -> None:
        await rt.sleep(scenario.warmup)
        evictions_at_warmup.append(cluster.evictions)
        if scenario.warmup > 0:
            cluster.op_times.reset()  # operations so far belong to the warm-up

    async def main() -> None:
        rt.spawn(snapshot_at_warmup())
        await loop.run(drive)

    rt.run(main())
    finish_progress()

    if scenario.duration is not None:
        recorder.end_time = max(scenario.duration, scenario.warmup)
    summary = recorder.summary()
    summary["evictions"] = cluster.evictions - (
        evictions_at_warmup[0] if evictions_at_warmup else 0
    )
    summary["lost_writes"] = oracle.lost_writes(origin.versions())
    summary["cache_keys"] = cluster.size
    summary["cache_memory"] = cluster.size * value_size
    summary.update(cluster.op_times.summary())
    if scenario.strategies[cell.strategy].read == "versioned":
        summary["orphaned_keys"], summary["orphaned_bytes"] = cluster.orphaned_versioned_keys()
    summary["simulated_time"] = float(env.now)
    summary["wall_time"] = time.perf_counter() - wall_start
    summary.update(_identity(scenario, cell))
    notes = []
    if summary["requests"] == 0:
        notes.append("no request started after the warm-up: make warmup shorter than the run")
    return RunResult(
        cell,
        summary,
        recorder.timeseries(),
        notes,
        distributions=recorder.distributions(),
        staleness_curve=recorder.staleness_curve(),
    )


def progress_hooks(
    scenario: Scenario, now: Callable[[], float], progress: Progress | None
) -> tuple[Callable[[int], None] | None, Callable[[], None]]:
    """Report progress by requests generated (requests mode) or by the run's clock
    (simulated or wall time), whichever the scenario is measured in."""
    if progress is None:
        return None, lambda: None
    report = progress
    generated = [0]

    def on_chunk(n: int) -> None:
        generated[0] += n
        if scenario.requests is not None:
            report(min(generated[0] / scenario.requests, 1.0))
        elif scenario.duration:
            report(min(max(now(), 0.0) / scenario.duration, 1.0))

    return on_chunk, lambda: report(1.0)


def _identity(scenario: Scenario, cell: Cell) -> dict[str, Any]:
    return {
        "scenario": scenario.name,
        "strategy": cell.strategy,
        "strategy_index": list(scenario.strategies).index(cell.strategy),  # order in the file
        "backend": cell.backend,
        "seed": cell.seed,
        "config_hash": scenario.config_hash(),
        "lab_version": lab.__version__,
        "versions": {
            "python": platform.python_version(),
            "simpy": simpy.__version__,
            "numpy": np.__version__,
        },
    }


__all__ = ["SIM_CAPABILITIES", "CellSkipped", "Progress", "RunResult", "run_cell", "run_sim"]
