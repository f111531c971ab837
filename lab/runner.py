"""Run one cell (scenario x strategy x backend x seed) and return its metrics.

`run_cell` is the one assembly of a run for every backend: it asks the
backend (from the registry, `lab.backends`) what it cannot do, lets it build
its parts, wires the harness to them (oracle, recorder, one strategy per app
instance), arms the faults, drives the request stream through the client
loop on the backend's clock, and turns the recorder and the backend's final
state into the summary. What differs between backends lives behind
`lab.backend.Backend`.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import simpy

import lab
from lab import backends
from lab.backend import Backend, CellSkipped, FinalState, Parts
from lab.client import ClientLoop
from lab.harness import Harness, build_harness
from lab.orphans import orphaned_versioned_keys
from lab.sampling import rng_for, sampler
from lab.scenario import Cell, Scenario
from lab.workload.stream import RequestStream, prepared


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
    scenario: Scenario,
    cell: Cell,
    progress: Progress | None = None,
    backend: Backend | None = None,
) -> RunResult:
    """Run one cell; `progress` receives the completed fraction (0..1) now and then.

    `backend` is a configured instance for this cell (servers to use, a binary);
    by default a new one of `cell.backend` from the registry. Raises CellSkipped
    (with the reason) for a cell the backend cannot run.
    """
    backend = backend if backend is not None else backends.create(cell.backend)
    refusal = backend.refusal(scenario, cell)
    if refusal:
        raise CellSkipped(refusal)
    wall_start = time.perf_counter()
    as_run = prepared(scenario, cell.seed)  # a trace's keyspace; a warm-up request count

    async def body(parts: Parts) -> RunResult:
        return await _measure(as_run, cell, backend, parts, progress)

    result = backend.execute(as_run, cell, body)
    result.summary["config_hash"] = scenario.config_hash()  # the scenario as written
    result.summary["wall_time"] = time.perf_counter() - wall_start
    return result


async def _measure(
    scenario: Scenario,
    cell: Cell,
    backend: Backend,
    parts: Parts,
    progress: Progress | None,
) -> RunResult:
    """The cell on the backend's parts: faults, harness, workload, summary."""
    faults = backend.schedule_faults(parts, scenario.faults)
    harness = build_harness(scenario, cell, parts, backend)
    rt = parts.runtime
    loop = ClientLoop(
        rt,
        harness.strategies,
        harness.oracle,
        harness.recorder,
        end_time=scenario.duration,
        gauges=parts.gauges,
        interval=scenario.metrics.interval,
    )
    on_chunk, finish_progress = progress_hooks(scenario, rt.now, progress)
    stream = RequestStream(scenario, cell.seed, on_chunk=on_chunk)
    drive = _workload(scenario, cell.seed, loop, stream)
    at_warmup: list[int] = []

    async def snapshot_at_warmup() -> None:
        await rt.sleep(scenario.warmup)
        at_warmup.append(backend.warmup_over(parts))

    async def main() -> None:
        if faults is not None:
            rt.spawn(faults)
        if scenario.warmup > 0:
            rt.spawn(snapshot_at_warmup())
        await loop.run(drive)

    await backend.run(parts, main())
    finish_progress()
    if scenario.duration is not None:
        harness.recorder.end_time = max(scenario.duration, scenario.warmup)
    return await _result(scenario, cell, backend, parts, harness, at_warmup[0] if at_warmup else 0)


async def _result(
    scenario: Scenario,
    cell: Cell,
    backend: Backend,
    parts: Parts,
    harness: Harness,
    evictions_before: int,
) -> RunResult:
    """The recorder's figures and the backend's final state, as one run's result."""
    state = await backend.final_state(parts)
    summary = _summary(scenario, cell, harness, state, evictions_before)
    if scenario.strategies[cell.strategy].read == "versioned":
        nodes = await backend.inventory(parts)
        if nodes is not None:
            orphans = await orphaned_versioned_keys(nodes)
            summary["orphaned_keys"], summary["orphaned_bytes"] = orphans
    summary.update(state.fields)
    notes = list(state.notes)
    if summary["requests"] == 0:
        notes.append("no request started after the warm-up: make warmup shorter than the run")
    recorder = harness.recorder
    return RunResult(
        cell,
        summary,
        recorder.timeseries(),
        notes,
        distributions=recorder.distributions(),
        staleness_curve=recorder.staleness_curve(),
    )


def _workload(
    scenario: Scenario, seed: int, loop: ClientLoop, stream: RequestStream
) -> Awaitable[None]:
    """The scenario's arrivals: an open loop (Poisson) or closed loop (clients)."""
    arrivals = scenario.workload.arrivals
    trace = scenario.workload.trace
    if arrivals.process == "poisson" or (trace is not None and trace.timed):
        return loop.open_loop(stream.arrivals())
    assert arrivals.clients is not None
    think = (
        sampler(arrivals.think, rng_for(seed, "workload.think"))
        if arrivals.think is not None and arrivals.think.mean_value > 0
        else None
    )
    return loop.closed_loop(stream.requests(), arrivals.clients, think)


def _summary(
    scenario: Scenario, cell: Cell, harness: Harness, state: FinalState, evictions_before: int
) -> dict[str, Any]:
    """The recorder's summary with the backend's final figures and the cell's identity."""
    summary = harness.recorder.summary()
    summary["evictions"] = state.evictions - evictions_before
    summary["lost_writes"] = harness.oracle.lost_writes(state.origin_versions)
    summary["cache_keys"] = state.cache_keys
    summary["cache_memory"] = state.cache_memory
    summary.update(_identity(scenario, cell))
    summary["versions"].update(state.versions)
    return summary


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
    point = {"point": cell.point, "params": scenario.params} if cell.point else {}
    return {
        **point,
        "scenario": scenario.name,
        "strategy": cell.strategy,
        "strategy_index": list(scenario.strategies).index(cell.strategy),  # order in the file
        "backend": cell.backend,
        "seed": cell.seed,
        "config_hash": None,  # run_cell's: the scenario as written, not as prepared for the run
        "lab_version": lab.__version__,
        "versions": {
            "python": platform.python_version(),
            "simpy": simpy.__version__,
            "numpy": np.__version__,
        },
    }


__all__ = ["CellSkipped", "Progress", "RunResult", "run_cell"]
