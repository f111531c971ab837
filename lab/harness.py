"""What every backend builds the same way around its Cache, Origin and Runtime:
the oracle, the recorder, the metered origin and one strategy per app instance.

A backend supplies the parts it implements and the capabilities it offers;
a strategy needing more is skipped with the reason, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.client import MeteredOrigin
from lab.core import Bus, Cache, Origin, Runtime
from lab.core.versions import VersionClock
from lab.metrics.oracle import Oracle
from lab.metrics.recorder import Recorder
from lab.patterns import Strategy, build_strategy
from lab.scenario import Cell, ClientSpec, Scenario


class CellSkipped(Exception):
    """A cell this machine or backend cannot run; the message says why."""


@dataclass
class Harness:
    """The backend-independent half of a run."""

    oracle: Oracle
    recorder: Recorder
    origin: MeteredOrigin
    strategies: list[Strategy]


def build_harness(
    scenario: Scenario,
    cell: Cell,
    *,
    rt: Runtime,
    cache: Cache,
    origin: Origin,
    bus: Bus | None,
    offers: frozenset[str],
    backend: str,
) -> Harness:
    """Wire the strategy of `cell` once per app instance to one backend's parts."""
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
            value_size=scenario.keyspace.value_size,
            versions=versions,
            bus=bus,
            resilient=bool(scenario.faults) or spec.client != ClientSpec(),
        )
        for instance in range(scenario.workload.instances)
    ]
    missing = strategies[0].requires - offers
    if missing:
        raise CellSkipped(
            f"strategy {cell.strategy!r} needs {', '.join(sorted(missing))}, "
            f"which the {backend} backend does not offer"
        )
    return Harness(oracle, recorder, metered, strategies)
