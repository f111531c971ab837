"""Shared helpers: build small simulated harnesses with exact, constant latencies."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import simpy

from lab.scenario import Scenario, parse_scenario
from lab.sim.cluster import SimCluster
from lab.sim.origin import SimOrigin
from lab.sim.runtime import SimRuntime


def make_scenario(**overrides: Any) -> Scenario:
    """A small valid scenario; keyword arguments replace top-level fields."""
    data: dict[str, Any] = {
        "name": "t",
        "requests": 2000,
        "keyspace": {"keys": 100},
        "workload": {"arrivals": {"process": "poisson", "rate": 1000}},
        "strategies": {"cache-aside": {"read": "cache-aside", "write": "invalidate", "ttl": 60}},
    }
    data.update(overrides)
    return parse_scenario(data, "test")


@pytest.fixture
def scenario_factory() -> Any:
    return make_scenario


def zero_network_sim(read_latency: float = 0.0) -> tuple[SimRuntime, SimCluster, SimOrigin]:
    """A one-node simulated cache that answers at once and an origin whose reads take
    `read_latency` (writes take no time): for exact timelines of strategy parts."""
    env = simpy.Environment()
    zero = itertools.repeat(0.0).__next__
    cache = SimCluster(
        env, nodes=1, capacity=None, eviction="lru", sharding="ketama", rtt=zero, service=zero
    )
    origin = SimOrigin(
        env,
        value_size=8,
        read_latency=itertools.repeat(read_latency).__next__,
        write_latency=zero,
        concurrency=8,
    )
    return SimRuntime(env), cache, origin
