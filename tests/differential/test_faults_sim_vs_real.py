"""Faults, sim vs real: the same fault on the same request stream has the same effect.

Open-loop (Poisson) arrivals make the stream identical on both backends, so
the requests that reach a faulty node during a fault window are the same
requests; what the simulator models (refusal, a cold restart, added delay, a
failover) must then cost the same number of cache errors and origin reads as
the real mechanism (a refusing proxy, SIGKILL and restart, a delaying proxy,
CLUSTER FAILOVER TAKEOVER). Tolerances cover the window edges: a real fault
starts a millisecond or two late, and requests in flight at its edges differ.

A restart (or a takeover) takes wall time after the window ends: forking the
server and waiting until it answers, longer on a busy machine (measured: 10 to
100 ms with two CPU hogs beside it). The run notes when the node serves again,
and the simulator is given that same downtime, so both backends are compared
on the same outage rather than on how fast this machine forks.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from lab.redis.backend import RedisBackend
from lab.redis.binaries import ServerBinary
from lab.runner import run_cell
from lab.scenario import Cell, Scenario
from tests.helpers import FAST_ORIGIN, poisson, timed_scenario

RATE = 600


RESTARTS = ("node_crash", "failover")  # the node comes back when its restart is done


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


def downtime(notes: list[str], fault: dict[str, Any]) -> float:
    """How long the fault's node was really down: from the fault's start until the run
    noted that it serves again (its restart or takeover done)."""
    for note in notes:
        found = re.fullmatch(rf"at ([0-9.]+)s: node {fault['node']} serves again", note)
        if found:
            return max(float(found.group(1)) - fault["at"], fault["duration"])
    raise AssertionError(f"the run never noted node {fault['node']} back: {notes}")


def both(
    faults: list[dict[str, Any]], binary: ServerBinary, **topology: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The real run, then the simulated one with the same downtime (see the docstring)."""
    real = run_cell(
        scenario(faults, **topology),
        Cell("t", "ca", "redis", 1),
        backend=RedisBackend(binary=binary),
    )
    as_real = [
        {**f, "duration": downtime(real.notes, f)} if f["kind"] in RESTARTS else f for f in faults
    ]
    sim = run_cell(scenario(as_real, **topology), Cell("t", "ca", "sim", 1)).summary
    assert real.summary["requests"] == pytest.approx(sim["requests"], rel=0.01)  # one stream
    return sim, real.summary


def test_a_refused_node_costs_the_same_errors(default_binary: ServerBinary) -> None:
    """Every operation on node 0 during the window fails at once on both backends."""
    sim, real = both(
        [{"kind": "partition", "node": 0, "mode": "refuse", "at": 1.0, "duration": 1.0}],
        default_binary,
    )
    assert sim["cache_errors"] > 100
    assert real["cache_errors"] == pytest.approx(sim["cache_errors"], rel=0.1)
    assert real["hit_ratio"] == pytest.approx(sim["hit_ratio"], abs=0.03)


def test_a_cold_restart_costs_the_same_misses(default_binary: ServerBinary) -> None:
    """After node 0 comes back empty, both backends refill it from the origin."""
    sim, real = both(
        [{"kind": "node_crash", "node": 0, "at": 1.0, "duration": 0.5}], default_binary
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
        [{"kind": "latency", "node": 0, "at": 1.0, "duration": 1.0, "add": slow}], default_binary
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
        [{"kind": "failover", "node": 0, "at": 1.0, "duration": 0.5}],
        default_binary,
        sharding="slots",
        replicas=1,
        replication_lag=lag,
    )
    assert sim["cache_errors"] > 50
    assert real["cache_errors"] == pytest.approx(sim["cache_errors"], rel=0.15)
    assert real["origin_reads"] == pytest.approx(sim["origin_reads"], rel=0.1)
    assert real["lost_writes"] == sim["lost_writes"] == 0
