"""Faults, sim vs real: the same fault on the same request stream has the same effect.

Open-loop (Poisson) arrivals make the stream identical on both backends, so
the requests that reach a faulty node during a fault window are the same
requests; what the simulator models (refusal, a cold restart, added delay, a
failover) must then cost the same number of cache errors and origin reads as
the real mechanism (a refusing proxy, SIGKILL and restart, a delaying proxy,
CLUSTER FAILOVER TAKEOVER). Tolerances cover the window edges: requests in
flight at a window's edges differ.

A restart (or a takeover) takes wall time after the window ends: forking the
server and waiting until it answers, longer on a busy machine (measured: 10 to
100 ms with two CPU hogs beside it). The run logs when the node serves again.

On a busy machine the load generator also falls behind its schedule (beside two
CPU hogs and other work, up to 150-370 ms late), so the requests a wall-clock
window catches are not the ones meant for it: real runs gave 274 and 345 cache
errors where the simulator, on the nominal windows, gave 340 and 419 (20% fewer
requests were really started inside the window). So the simulator is given the
window the real run actually exposed (`tests.real.achieved`): from the intended
start of the first request really started after the fault began, to that of the
first one really started after it healed (or the node served again). Both
backends then see the same requests meet the fault, however late the generator.

What no window can undo: the generator's own event loop stalling (seen: single
10 ms steps taking 0.2-0.3 s of wall time beside the hogs and other work). A
request reaches its node up to a stall after its recorded start, blurring each
edge by that much, and a stall past the client timeout times out every operation
in flight, healthy or not (clumps of 30-56 cache errors in 0.1 s, outside any
fault). The run reports its stalls itself (`driver_lag_max` in its summary, "the
load generator fell behind" in its notes); a run that stalled longer than
MAX_STALL is skipped with that report, not compared.
"""

from __future__ import annotations

from typing import Any

import pytest

from lab.redis.backend import RedisBackend
from lab.redis.binaries import ServerBinary
from lab.runner import run_cell
from lab.scenario import Cell, Scenario
from tests.helpers import FAST_ORIGIN, poisson, timed_scenario
from tests.real.achieved import Achieved, achieved, fault_times

RATE = 250
TIMEOUT = 0.5
"""The client timeout: one a busy CPU alone does not reach. With 0.1 s, runs beside
CPU hogs timed out healthy operations outside any fault (a failover run: 568 real
cache errors where the simulator had 484; a latency run: 165 after its window)."""

MAX_STALL = 0.2
"""The longest event-loop stall (the run's own `driver_lag_max`) a comparison survives.
A request reaches its node within one stall of its recorded start, so a stall blurs
each window edge by that long: 0.2 s is 25 requests to a node at 250/s, the size of
the tolerances (10-15% of 160-530 cache errors). Beside two CPU hogs alone stalls
stayed at 25-120 ms; with other work on the machine too they reached 340-670 ms."""

RESTARTS = ("node_crash", "failover")  # the node comes back when its restart is done


def scenario(
    faults: list[dict[str, Any]], rate: float = RATE, timeout: float = TIMEOUT, **topology: Any
) -> Scenario:
    client = {"timeout": timeout}
    return timed_scenario(
        3.0,
        rate,
        warmup=0.5,
        metrics={"interval": 0.5},
        keyspace={"keys": 400, "value_size": 128},
        workload=poisson(rate, zipf=0.8),
        topology={"nodes": 2, **topology},
        origin=FAST_ORIGIN,
        strategies={"ca": {"read": "cache-aside", "write": "update", "ttl": 60, "client": client}},
        faults=faults,
    )


def window(
    log: list[tuple[float, str]], fault: dict[str, Any], schedule: Achieved
) -> tuple[float, float]:
    """The one fault's real window on the run's wall clock: from its start until it
    healed or, for a restart or a takeover, until the node first answered a command
    the run sent after the restart began. Not the run's "serves again" note: that is
    logged when the restarting thread got back to it (a restarted node answered 60 ms
    before its note beside CPU hogs: 134 real cache errors, 162 simulated), and a
    client follows a takeover only once its slot refresh has asked every node (up to
    0.1 s later: 87 cache errors in one 0.1 s bucket where the simulator had 15)."""
    assert len(log) >= 2, log
    if fault["kind"] in RESTARTS:
        return log[0][0], schedule.first_answer(fault["node"], after=log[1][0])
    return log[0][0], log[1][0]


def both(
    faults: list[dict[str, Any]],
    binary: ServerBinary,
    monkeypatch: pytest.MonkeyPatch,
    rate: float = RATE,
    timeout: float = TIMEOUT,
    **topology: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The real run, then the simulated one given the window the real run's requests
    actually met (see the docstring)."""
    (fault,) = faults
    backend = RedisBackend(binary=binary)
    with achieved(monkeypatch) as schedule:
        real = run_cell(
            scenario(faults, rate, timeout, **topology),
            Cell("t", "ca", "redis", 1),
            backend=backend,
        )
    stalled = real.summary["driver_lag_max"]
    if stalled >= min(timeout, MAX_STALL):
        pytest.skip(
            f"the run reports its load generator stalled {stalled * 1000:.0f} ms (driver_lag_max; "
            f"notes: {[n for n in real.notes if 'fell behind' in n]}): more than "
            f"{min(timeout, MAX_STALL) * 1000:.0f} ms, so requests crossed the window's edges "
            "unseen (or timed out healthy) by more than the tolerance: the cache errors "
            "measure this busy machine, not the fault"
        )
    begin, end = window(fault_times(backend), fault, schedule)
    at, until = schedule.intended_at(begin), schedule.intended_at(end)
    print(
        f"real window {begin:.3f}-{end:.3f}s met the requests meant for {at:.3f}-{until:.3f}s; "
        f"the generator was up to {schedule.behind() * 1000:.0f} ms late, "
        f"its loop stalled up to {real.summary['driver_lag_max'] * 1000:.0f} ms"
    )
    as_real = [{**fault, "at": at, "duration": max(until - at, 0.001)}]
    sim = run_cell(scenario(as_real, rate, timeout, **topology), Cell("t", "ca", "sim", 1)).summary
    assert real.summary["requests"] == pytest.approx(sim["requests"], rel=0.01)  # one stream
    return sim, real.summary


def test_a_refused_node_costs_the_same_errors(
    default_binary: ServerBinary, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every operation on node 0 during the window fails at once on both backends."""
    sim, real = both(
        [{"kind": "partition", "node": 0, "mode": "refuse", "at": 1.0, "duration": 1.0}],
        default_binary,
        monkeypatch,
    )
    assert sim["cache_errors"] > 100
    assert real["cache_errors"] == pytest.approx(sim["cache_errors"], rel=0.1)
    assert real["hit_ratio"] == pytest.approx(sim["hit_ratio"], abs=0.03)


def test_a_cold_restart_costs_the_same_misses(
    default_binary: ServerBinary, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After node 0 comes back empty, both backends refill it from the origin."""
    sim, real = both(
        [{"kind": "node_crash", "node": 0, "at": 1.0, "duration": 0.5}], default_binary, monkeypatch
    )
    assert sim["cache_errors"] > 50
    assert real["cache_errors"] == pytest.approx(sim["cache_errors"], rel=0.15)
    assert real["origin_reads"] == pytest.approx(sim["origin_reads"], rel=0.1)
    assert real["hit_ratio"] == pytest.approx(sim["hit_ratio"], abs=0.03)


def test_added_latency_past_the_timeout_costs_the_same_errors(
    default_binary: ServerBinary, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A constant 400 ms on node 0, past the 300 ms client timeout: every operation on
    it times out, in the simulator's model and through the real proxy.

    Each such operation holds one of the node's 64 pooled connections until it times
    out, and waiting for a connection has no timeout. At the other tests' 600/s (with a
    150 ms delay past a 100 ms timeout) the pool ran dry beside CPU hogs (2030 of 2575
    checkouts waited) and operations that waited through the window went out after the
    heal: 91 real cache errors against 373 simulated. At 100/s about 90 operations a
    second fail on node 0, about 27 connections held at once."""
    slow = {"distribution": "constant", "value": 0.4}
    sim, real = both(
        [{"kind": "latency", "node": 0, "at": 0.75, "duration": 1.75, "add": slow}],
        default_binary,
        monkeypatch,
        rate=100,
        timeout=0.3,
    )
    assert sim["cache_errors"] > 100
    assert real["cache_errors"] == pytest.approx(sim["cache_errors"], rel=0.1)


def test_a_failover_costs_the_same_errors_and_keeps_the_data(
    default_binary: ServerBinary, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Node 0's primary dies; 0.5 s later its replica serves what it had (everything,
    with a lag far below the run's write gaps): errors during the election, then hits
    again, on both backends alike."""
    lag = {"distribution": "constant", "value": 0.0005}
    sim, real = both(
        [{"kind": "failover", "node": 0, "at": 1.0, "duration": 0.5}],
        default_binary,
        monkeypatch,
        sharding="slots",
        replicas=1,
        replication_lag=lag,
    )
    assert sim["cache_errors"] > 50
    assert real["cache_errors"] == pytest.approx(sim["cache_errors"], rel=0.15)
    assert real["origin_reads"] == pytest.approx(sim["origin_reads"], rel=0.1)
    assert real["lost_writes"] == sim["lost_writes"] == 0
