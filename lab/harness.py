"""What every backend gets the same way around its Cache, Origin and Runtime:
the oracle, the recorder, the metered origin and one strategy per app instance.

A backend supplies the parts it implements and the capabilities it offers;
a strategy needing more is skipped with the reason, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from lab.backend import CellSkipped, Parts
from lab.client import MeteredOrigin
from lab.core.versions import VersionClock
from lab.metrics.oracle import Oracle
from lab.metrics.recorder import Recorder
from lab.patterns import Strategy, build_strategy
from lab.scenario import Cell, ClientSpec, Scenario
from lab.workload.values import run_value_size

if TYPE_CHECKING:
    from lab.backend import Backend


def resilient(scenario: Scenario, cell: Cell) -> bool:
    """Whether the strategy's client handles cache failures (timeouts, fallback, retries,
    breaker): always when the scenario injects faults, when the cache may refuse writes
    (a full `noeviction` or `volatile-*` node), or when the strategy asks for any of it."""
    return (
        bool(scenario.faults)
        or scenario.topology.refuses_writes
        or scenario.strategies[cell.strategy].client != ClientSpec()
    )


@dataclass
class Harness:
    """The backend-independent half of a run."""

    oracle: Oracle
    recorder: Recorder
    origin: MeteredOrigin
    strategies: list[Strategy]


def build_harness(scenario: Scenario, cell: Cell, parts: Parts, backend: Backend) -> Harness:
    """Wire the strategy of `cell` once per app instance to one backend's parts."""
    rt, cache, origin, bus = parts.runtime, parts.cache, parts.origin, parts.bus
    oracle = Oracle()
    recorder = Recorder(oracle, interval=scenario.metrics.interval, warmup=scenario.warmup)
    recorder.clock = rt.now
    recorder.faults = [(f.kind, f.at, f.at + f.duration) for f in scenario.faults]
    metered = MeteredOrigin(origin, rt, recorder)
    spec = scenario.strategies[cell.strategy]
    versions = VersionClock()  # shared by all app instances of the run
    strategies = [
        build_strategy(
            cell.strategy,
            spec,
            cache,
            metered,
            rt,
            cell.seed * 1000 + instance,
            metrics=recorder,
            value_size=run_value_size(scenario.keyspace, cell.seed),
            versions=versions,
            bus=bus,
            resilient=resilient(scenario, cell),
        )
        for instance in range(scenario.workload.instances)
    ]
    missing = strategies[0].requires - backend.capabilities
    if missing:
        raise CellSkipped(
            f"strategy {cell.strategy!r} needs {', '.join(sorted(missing))}, "
            f"which the {backend.name} backend does not offer"
        )
    return Harness(oracle, recorder, metered, strategies)
