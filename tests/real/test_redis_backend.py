"""The redis backend end to end: run_cell on fresh servers, and `cachelab run
--backend redis` as a user runs it. Real servers and databases, no mocks."""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from lab.processes import HOST
from lab.redis.backend import RedisBackend
from lab.redis.binaries import ServerBinary
from lab.redis.cache import RedisCache
from lab.redis.server import start_shards
from lab.runner import CellSkipped, run_cell
from lab.scenario import Cell
from lab.sharding import key_name, router
from tests.helpers import FAST, FAST_ORIGIN, make_scenario
from tests.real.achieved import achieved, fault_times

REPO_ROOT = Path(__file__).resolve().parents[2]
PG_URL = os.environ.get("CACHELAB_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def server_pids(under: Path | None = None) -> set[int]:
    """PIDs of the redis-server / valkey-server processes this test started: children of
    this process, or (`under`: a subprocess's private TMPDIR) those working in a
    folder under it, whoever their parent is now (an orphan's is init). Other
    processes on the machine (the machine's 6379, other suites' servers running at
    the same time) are never counted."""
    me = str(os.getpid())
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if not argv[0].endswith((b"redis-server", b"valkey-server")):
                continue
            if under is not None:
                ours = Path(os.readlink(entry / "cwd")).is_relative_to(under)
            else:
                ours = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1] == me
        except OSError:
            continue
        if ours:
            pids.add(int(entry.name))
    return pids


def test_sharded_cache_places_keys_where_the_sim_router_says(
    binary: ServerBinary,
) -> None:
    import asyncio

    from lab.core import Versioned

    with start_shards(3, binary=binary) as shards:

        async def fill() -> None:
            cache = RedisCache([(HOST, p) for p in shards.ports], sharding="ketama", keys=50)
            try:
                for key in [*range(100), "name:a", "name:b"]:  # table and hashed routing
                    await cache.set(key, Versioned(1, 16))
            finally:
                await cache.close()

        asyncio.run(fill())
        route = router("ketama", 3)
        for index, shard in enumerate(shards):
            client = shard.client(decode_responses=True)
            try:
                held = {str(k) for k in client.keys("*")}
            finally:
                client.close()
            expected = {
                key_name(k)
                for k in [*range(100), "name:a", "name:b"]
                if route(key_name(k)) == index
            }
            assert held == expected and held


def test_open_loop_timed_run_has_the_sim_summary_keys(default_binary: ServerBinary) -> None:
    """Every summary field the simulator gives, from a timed open-loop run on real servers.

    No capacity limit: eviction under maxmemory is the capacity tests' subject (and
    test_lru_hit_ratio_matches_within_one_point's), not this one's. Real latencies are
    only checked for their order: on a busy machine the load generator's own queueing
    is in them (tests/real must pass beside CPU hogs).
    """
    scenario = make_scenario(
        requests=None,
        duration=1.5,
        warmup=0.5,
        metrics={"interval": 0.5},
        keyspace={"keys": 2000, "value_size": 256},
        workload={
            "mix": {"read": 0.9},
            "arrivals": {"process": "poisson", "rate": 800},
            "instances": 2,
        },
        topology={"nodes": 2},
        origin=FAST_ORIGIN,
    )
    before = server_pids()
    real = run_cell(
        scenario, Cell("t", "cache-aside", "redis", 1), backend=RedisBackend(binary=default_binary)
    )
    sim = run_cell(scenario, Cell("t", "cache-aside", "sim", 1))
    assert server_pids() <= before  # every server stopped
    assert set(sim.summary) <= set(real.summary)
    s = real.summary
    assert 0.8 * 800 < s["throughput"] < 1.2 * 800  # open loop: the rate, not the speed
    assert s["requests"] == pytest.approx(sim.summary["requests"], rel=0.02)  # same stream
    assert s["errors"] == 0 and s["lost_writes"] == 0
    assert s["evictions"] == sim.summary["evictions"] == 0
    assert s["cache_keys"] == pytest.approx(sim.summary["cache_keys"], rel=0.05)  # same fills
    assert 0 < s["read_latency_p50"] <= s["read_latency_p99"]
    assert s["backend"] == "redis" and s["versions"]["server"] == default_binary.label
    assert s["versions"]["origin"].startswith("sqlite-")
    assert 1.5 <= s["wall_time"] < 15
    ts = real.timeseries
    assert ts["warmup"].tolist()[:2] == [True, False]
    assert {"evictions_delta", "cache_keys", "cache_memory", "connections"} <= set(ts.columns)
    # the article's dashboard: memory, connections, cache operation p50/p99, on both
    assert s["cache_memory"] > s["cache_keys"] * 256  # used_memory: payload plus overhead
    assert s["cache_memory_peak"] >= s["cache_memory"] * 0.9
    assert s["connections_max"] >= 2  # each node: the run's pool (and the lab's own clients)
    for summary in (s, sim.summary):
        assert summary["cache_ops"] > summary["requests"]  # a miss is a GET and a SET
        assert 0 < summary["cache_op_p50"] <= summary["cache_op_p99"]
    assert sim.summary["cache_op_p99"] < 0.05  # the model: no queueing of its own
    assert sim.summary["cache_memory"] == sim.summary["cache_keys"] * 256


def test_postgres_origin_by_url(default_binary: ServerBinary) -> None:
    scenario = make_scenario(
        requests=600,
        keyspace={"keys": 100},
        workload={"mix": {"read": 0.8}, "arrivals": {"process": "closed", "clients": 4}},
        origin={"read_latency": FAST, "write_latency": FAST, "url": PG_URL, "concurrency": 4},
    )
    try:
        result = run_cell(
            scenario,
            Cell("t", "cache-aside", "redis", 1),
            backend=RedisBackend(binary=default_binary),
        )
    except CellSkipped as why:
        pytest.skip(f"PostgreSQL unreachable: {why}")
    s = result.summary
    assert s["requests"] == 600 and s["writes"] > 50 and s["errors"] == 0
    assert s["lost_writes"] == 0
    assert s["versions"]["origin"].startswith("postgresql-")


def test_fifo_eviction_is_skipped_with_the_reason() -> None:
    scenario = make_scenario(topology={"capacity": 100, "eviction": "fifo"})
    with pytest.raises(CellSkipped, match="fifo"):
        run_cell(scenario, Cell("t", "cache-aside", "redis", 1))


def test_cli_runs_a_scenario_on_redis(tmp_path: Path, default_binary: ServerBinary) -> None:
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(
        "name: tiny\n"
        "requests: 1500\n"
        "keyspace: {keys: 200, value_size: 1KiB}\n"
        "workload: {mix: {read: 0.9}, arrivals: {process: closed, clients: 4}}\n"
        "topology: {nodes: 2, capacity: 60 keys}\n"
        "origin: {read_latency: {distribution: constant, value: 1ms}, "
        "write_latency: {distribution: constant, value: 1ms}}\n"
        "strategies: {cache-aside: {read: cache-aside, write: invalidate, ttl: 60s}}\n"
        "backends: [sim, redis]\n"
    )
    results = tmp_path / "results"
    private_tmp = tmp_path / "tmp"  # the run's servers work under it
    private_tmp.mkdir()
    env = dict(os.environ, CACHELAB_SERVER_BIN=default_binary.path, TMPDIR=str(private_tmp))
    proc = subprocess.run(
        [sys.executable, "-m", "lab", "run", str(scenario), "--backend", "redis",
         "--results", str(results), "--no-progress"],
        capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summaries = list(results.glob("tiny/*/summary.json"))
    assert [p.parent.name for p in summaries] == ["cache-aside.redis.s1"]
    summary = json.loads(summaries[0].read_text())
    assert summary["backend"] == "redis" and summary["requests"] == 1500
    assert summary["versions"]["server"] == default_binary.label
    assert 0 < summary["hit_ratio"] < 1
    assert "cache-aside" in proc.stdout  # the comparison table
    assert not server_pids(under=private_tmp), "servers left running after the CLI exited"


def test_a_run_that_cannot_drain_ends_on_time_with_a_note(
    monkeypatch: pytest.MonkeyPatch, default_binary: ServerBinary
) -> None:
    """Requests stuck at a hopeless origin are abandoned after the grace period."""
    import lab.redis.backend

    monkeypatch.setattr(lab.redis.backend, "DRAIN_GRACE", 0.5)
    scenario = make_scenario(
        requests=None,
        duration=0.5,
        workload={"mix": {"read": 1.0}, "arrivals": {"process": "poisson", "rate": 200}},
        origin={"read_latency": {"distribution": "constant", "value": 30}},
    )
    before = server_pids()
    started = time.monotonic()
    result = run_cell(
        scenario, Cell("t", "cache-aside", "redis", 1), backend=RedisBackend(binary=default_binary)
    )
    assert time.monotonic() - started < 10
    assert any("abandoned" in note for note in result.notes), result.notes
    assert server_pids() <= before


def test_node_and_origin_faults_hit_the_run_and_it_recovers(
    default_binary: ServerBinary, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash, a pause and an origin outage each reach the clients, and the run recovers.
    The outage and the recovery are judged on the requests really started inside and
    after it (`tests.real.achieved`): at a load average of 7 on 2 cores the generator
    stalled through the whole 0.2 s outage once, and no read met it."""
    scenario = make_scenario(
        requests=None,
        duration=2.4,
        metrics={"interval": 0.4},
        keyspace={"keys": 500, "value_size": 256},
        workload={"mix": {"read": 0.9}, "arrivals": {"process": "poisson", "rate": 500}},
        topology={"nodes": 2, "capacity": 200},
        origin=FAST_ORIGIN,
        strategies={"ca": {"read": "cache-aside", "write": "invalidate", "ttl": 60}},
        faults=[
            {"kind": "node_crash", "node": 0, "at": 0.4, "duration": 0.4},
            {"kind": "node_pause", "node": 1, "at": 1.2, "duration": 0.3},
            {"kind": "origin_down", "at": 1.8, "duration": 0.2},
        ],
    )
    before = server_pids()
    backend = RedisBackend(binary=default_binary)
    with achieved(monkeypatch) as schedule:
        result = run_cell(scenario, Cell("t", "ca", "redis", 1), backend=backend)
    s = result.summary
    assert server_pids() <= before
    assert any("crash node 0" in n for n in result.notes)
    assert any("restart node 0" in n for n in result.notes)
    assert s["cache_errors"] > 0  # the clients saw the crash and the pause (fallback: degraded)
    log = fault_times(backend)
    down = next(t for t, what in log if what == "origin down")
    up = next(t for t, what in log if what == "origin recovers")
    during = schedule.started_between(down, up)
    if not during:
        pytest.skip(
            f"no request started in the origin outage ({down:.2f}-{up:.2f}s on the run's "
            f"clock): the load generator stalled {s['driver_lag_max'] * 1000:.0f} ms"
        )
    # reads that missed had nowhere to go (a read started just before it may still hit)
    assert s["errors"] > 0 and "error" in during, (Counter(during), log)
    after = schedule.started_between(up, math.inf)
    assert "error" not in after and "hit" in after, Counter(after)  # recovered
    assert s["capacity_keys_end"][0] <= 200 + 5  # restarted node got its limit back


# Rows of a timeseries count requests by their intended start. On a busy machine the
# load generator issues some of them late (beside two CPU hogs and other work: up to
# 0.2-0.5 s), so a request meant for the middle of a fault window may go out after the
# heal (4 hits were counted in a window where every read must miss). The window is
# therefore checked on the requests really started inside it (`tests.real.achieved`),
# between the times the run logged for the faults, whatever the generator's lag.
# Each operation on the delayed node holds one of its 64 pooled connections for the
# whole timeout. A request waiting for one used to have no timeout (at 400/s the pool
# ran dry and reads started in the window went out after the heal and hit, 41 of 260);
# the wait now counts against the timeout (tests/real/test_pool_timeout.py). At 80/s
# about 40 connections are held at once (a miss holds two in turn: GET, then SET).


def test_network_faults_through_the_proxy_make_cache_errors(
    default_binary: ServerBinary, monkeypatch: pytest.MonkeyPatch
) -> None:
    timeout = 0.5  # a timeout a busy CPU alone does not reach (the default is 0.1 s)
    scenario = make_scenario(
        requests=None,
        duration=2.4,
        metrics={"interval": 0.2},
        keyspace={"keys": 300, "value_size": 256},
        workload={"mix": {"read": 0.9}, "arrivals": {"process": "poisson", "rate": 80}},
        topology={"nodes": 2},
        origin=FAST_ORIGIN,
        strategies={
            "ca": {
                "read": "cache-aside",
                "write": "invalidate",
                "ttl": 60,
                "client": {"timeout": timeout},
            }
        },
        faults=[
            {"kind": "partition", "node": 0, "mode": "refuse", "at": 0.4, "duration": 1.0},
            {
                "kind": "latency",
                "node": 1,
                "at": 0.4,
                "duration": 1.0,
                "add": {"distribution": "constant", "value": 2.0},  # > the timeout
            },
        ],
    )
    backend = RedisBackend(binary=default_binary)
    with achieved(monkeypatch) as schedule:
        result = run_cell(scenario, Cell("t", "ca", "redis", 1), backend=backend)
    s, ts = result.summary, result.timeseries
    stalled = s["driver_lag_max"]
    if stalled >= 0.3:
        pytest.skip(
            f"the run reports its load generator stalled {stalled * 1000:.0f} ms "
            "(driver_lag_max): the 1 s window minus that much at each edge leaves too "
            "few requests to judge"
        )
    log = fault_times(backend)
    both_on = max(t for t, what in log if what.startswith(("partition", "latency")))
    healed = [t for t, what in log if what.endswith("healed")]
    # a request reaches its node within a stall of its start, of the generator's loop or
    # of the proxy process (as starved; seen: a read started 40 ms before the heal hit):
    # the window's edges are left out by the longest stall the run measured, or 0.1 s
    edge = max(stalled, 0.1)
    during = schedule.started_between(both_on + edge, min(healed) - edge)
    after = schedule.started_between(max(healed), math.inf)
    # every node refuses or delays past the timeout: every read started inside misses
    assert during.count("miss") > 15 and "hit" not in during, (Counter(during), log)
    assert s["cache_errors"] > 50
    # stragglers (in flight when it healed) time out within the timeout; nothing later
    late = ts[ts["t"] >= max(healed) + timeout + 0.2]  # + a row: rows are 0.2 s
    assert late["cache_errors"].sum() < s["cache_errors"] / 2
    assert after.count("hit") > 0
    assert any("partition node 0" in n for n in result.notes)


def test_latency_and_hang_go_through_a_real_proxy(
    default_binary: ServerBinary, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 150 ms latency fault below the 0.5 s timeout slows the node's reads by at least
    150 ms and fails none (real bytes held back by the fault proxy); a hang partition
    times reads out. Latencies are bounded from below by the delay and compared with
    each other, never with a fixed "fast" figure a busy CPU would break."""
    delay, timeout = 0.15, 0.5
    scenario = make_scenario(
        requests=None,
        duration=2.4,
        metrics={"interval": 0.4},
        keyspace={"keys": 200, "value_size": 128},
        workload={"mix": {"read": 1.0}, "arrivals": {"process": "poisson", "rate": 300}},
        topology={"nodes": 1},
        origin=FAST_ORIGIN,
        strategies={
            "ca": {
                "read": "cache-aside",
                "write": "invalidate",
                "ttl": 60,
                "client": {"timeout": timeout},
            }
        },
        faults=[
            {
                "kind": "latency",
                "node": 0,
                "at": 0.4,
                "duration": 0.4,
                "add": {"distribution": "constant", "value": delay},
            },
            {"kind": "partition", "node": 0, "mode": "hang", "at": 1.0, "duration": 0.3},
        ],
    )
    before = server_pids()
    backend = RedisBackend(binary=default_binary)
    with achieved(monkeypatch) as schedule:
        result = run_cell(scenario, Cell("t", "ca", "redis", 1), backend=backend)
    ts = result.timeseries.reset_index(drop=True)  # row i: [0.4 i, 0.4 (i + 1))
    slow = ts.loc[1]
    # every read pays the delay at least once (a miss twice: GET, then SET), none times out
    assert delay <= slow["read_p99"] and slow["cache_errors"] == 0
    # before it, reads are not delayed. Not compared by the row's p99, which counts from
    # the intended start and so includes the generator's own lag (beside CPU hogs the
    # first 0.4 s had a p99 of 367 ms, the delayed window 352 ms): by each read's time
    # from its real start, whose median a few stalls do not move
    undelayed = [t for i, t in schedule.service.items() if i < 0.4]
    assert statistics.median(undelayed) < delay
    assert ts.loc[3, "cache_errors"] > 10  # the hang (1.0-1.3 s): reads time out
    # Healed: once the node answers again (the proxy has reset the connections the hang
    # held), only operations already in flight may still time out, within the timeout.
    # Judged from that first answer, not from a fixed row: at a load average of 7 the
    # proxy process and the loop were starved and 29 operations timed out 0.7-1.1 s
    # after the heal was logged. A stall of the loop delays when a timeout is counted.
    log = fault_times(backend)
    heal = max(t for t, what in log if what == "node 0 healed")
    back = schedule.first_answer(0, heal)
    settled = back + timeout + max(result.summary["driver_lag_max"], 0.1)
    late = [t for t in schedule.cache_errors if t > settled]
    assert not late, (f"back {back:.2f}s", late, log)
    assert "hit" in schedule.started_between(back, math.inf)
    assert server_pids() <= before
