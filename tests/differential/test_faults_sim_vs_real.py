"""Faults, sim vs real: the same fault on the same request stream has the same effect.

Open-loop (Poisson) arrivals make the stream identical on both backends, so
the requests that reach a faulty node during a fault window are the same
requests; what the simulator models (refusal, a cold restart, added delay, a
failover) must then cost the same number of cache errors and origin reads as
the real mechanism (a refusing proxy, SIGKILL and restart, a delaying proxy,
CLUSTER FAILOVER TAKEOVER). Tolerances cover the window edges: a real fault
starts a millisecond or two late, and requests in flight at its edges differ.
"""

from __future__ import annotations

from typing import Any

import pytest

from lab.redis.backend import RedisBackend
from lab.redis.binaries import ServerBinary
from lab.runner import run_cell
from lab.scenario import Cell, Scenario
from tests.helpers import FAST_ORIGIN, poisson, timed_scenario

RATE = 600


def scenario(faults: list[dict[str, Any]], **topology: Any) -> Scenario:
    return timed_scenario(
        3.0,
        RATE,
        warmup=0.5,
        metrics={"interval": 0.5},
        keyspace={"keys": 400, "value_size": 128},
        workload=poisson(RATE, zipf=0.8),
        topology={"nodes": 2, **topology},
        origin=FAST_ORIGIN,
        strategies={
            "ca": {"read": "cache-aside", "write": "update", "ttl": 60, "client": {"timeout": 0.1}}
        },
        faults=faults,
    )


def both(sc: Scenario, binary: ServerBinary) -> tuple[dict[str, Any], dict[str, Any]]:
    sim = run_cell(sc, Cell("t", "ca", "sim", 1)).summary
    real = run_cell(sc, Cell("t", "ca", "redis", 1), backend=RedisBackend(binary=binary)).summary
    assert real["requests"] == pytest.approx(sim["requests"], rel=0.01)  # one stream
    return sim, real


def test_a_refused_node_costs_the_same_errors(default_binary: ServerBinary) -> None:
    """Every operation on node 0 during the window fails at once on both backends."""
    sim, real = both(
        scenario([{"kind": "partition", "node": 0, "mode": "refuse", "at": 1.0, "duration": 1.0}]),
        default_binary,
    )
    assert sim["cache_errors"] > 100
    assert real["cache_errors"] == pytest.approx(sim["cache_errors"], rel=0.1)
    assert real["hit_ratio"] == pytest.approx(sim["hit_ratio"], abs=0.03)


def test_a_cold_restart_costs_the_same_misses(default_binary: ServerBinary) -> None:
    """After node 0 comes back empty, both backends refill it from the origin."""
    sim, real = both(
        scenario([{"kind": "node_crash", "node": 0, "at": 1.0, "duration": 0.5}]), default_binary
    )
    assert sim["cache_errors"] > 50
    assert real["cache_errors"] == pytest.approx(sim["cache_errors"], rel=0.15)
    assert real["origin_reads"] == pytest.approx(sim["origin_reads"], rel=0.1)
    assert real["hit_ratio"] == pytest.approx(sim["hit_ratio"], abs=0.03)


def test_added_latency_past_the_timeout_costs_the_same_errors(
    default_binary: ServerBinary,
) -> None:
    """A constant 150 ms on node 0, past the 100 ms client timeout: every operation on
    it times out, in the simulator's model and through the real proxy."""
    slow = {"distribution": "constant", "value": 0.15}
    sim, real = both(
        scenario([{"kind": "latency", "node": 0, "at": 1.0, "duration": 1.0, "add": slow}]),
        default_binary,
    )
    assert sim["cache_errors"] > 100
    assert real["cache_errors"] == pytest.approx(sim["cache_errors"], rel=0.1)


def test_a_failover_costs_the_same_errors_and_keeps_the_data(
    default_binary: ServerBinary,
) -> None:
    """Node 0's primary dies; 0.5 s later its replica serves what it had (everything,
    with a lag far below the run's write gaps): errors during the election, then hits
    again, on both backends alike."""
    lag = {"distribution": "constant", "value": 0.0005}
    sim, real = both(
        scenario(
            [{"kind": "failover", "node": 0, "at": 1.0, "duration": 0.5}],
            sharding="slots",
            replicas=1,
            replication_lag=lag,
        ),
        default_binary,
    )
    assert sim["cache_errors"] > 50
    assert real["cache_errors"] == pytest.approx(sim["cache_errors"], rel=0.15)
    assert real["origin_reads"] == pytest.approx(sim["origin_reads"], rel=0.1)
    assert real["lost_writes"] == sim["lost_writes"] == 0
