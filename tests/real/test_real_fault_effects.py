"""Each fault's effect on real servers, asserted as the simulator's tests assert it:
a crashed node comes back empty, write-behind loses what it had not flushed, a lost
bus leaves near copies stale. Real servers, a real SQLite origin, no mocks."""

from __future__ import annotations

import asyncio

import pytest

from lab.core import Versioned
from lab.core.errors import CacheUnavailable
from lab.redis.binaries import ServerBinary
from lab.redis.cache import RedisCache
from lab.redis.deployment import start_local
from lab.runner import RunResult, run_cell
from lab.scenario import Cell
from tests.helpers import FAST_ORIGIN, make_scenario


def test_after_a_crash_that_nodes_keys_miss_and_the_others_stay(
    binary: ServerBinary,
) -> None:
    deployment = start_local(2, 0, cluster=False, binary=binary)

    async def main() -> None:
        cache = RedisCache(deployment.addresses, keys=100, timeout=0.5)
        try:
            for k in range(100):
                await cache.set(k, Versioned(1, 32))
            deployment.server(0).kill()
            deployment.server(0).restart()
            got = {}
            for k in range(100):
                try:
                    got[k] = await cache.get(k)
                except CacheUnavailable:  # the pooled connection died with the server
                    got[k] = await cache.get(k)
            on0 = [k for k in range(100) if cache.node_of(k) == 0]
            assert on0 and len(on0) < 100
            assert all(got[k] is None for k in on0)
            assert all(got[k] == Versioned(1, 32) for k in range(100) if k not in on0)
        finally:
            await cache.close()

    try:
        asyncio.run(main())
    finally:
        deployment.stop()


def test_after_a_restart_pooled_connections_to_the_node_fail_nothing(
    default_binary: ServerBinary,
) -> None:
    """The crash closed every pooled connection to the node; once it is back (restarted
    from a worker thread, as the node_crash fault does), none of them is handed out
    dead: not one command fails, however many connections the pool held."""
    deployment = start_local(1, 0, cluster=False, binary=default_binary)

    async def main() -> None:
        cache = RedisCache(deployment.addresses, keys=100, timeout=2.0)
        try:
            await cache.connect(16)  # 16 idle connections in the pool
            await asyncio.gather(*(cache.set(k, Versioned(1, 32)) for k in range(16)))
            await asyncio.to_thread(deployment.server(0).restart)
            got = await asyncio.gather(*(cache.get(k) for k in range(64)))
            assert got == [None] * 64  # cold, and no CacheUnavailable
        finally:
            await cache.close()

    try:
        asyncio.run(main())
    finally:
        deployment.stop()


def _write_behind_crash(strategy: dict[str, object]) -> dict[str, object]:
    scenario = make_scenario(
        requests=None,
        duration=2.4,
        metrics={"interval": 0.4},
        keyspace={"keys": 300, "value_size": 128},
        workload={
            "mix": {"read": 0.5},
            "keys": {"distribution": "zipf", "s": 0.99},
            "arrivals": {"process": "poisson", "rate": 400},
        },
        topology={"nodes": 2},
        origin=FAST_ORIGIN,
        strategies={"s": strategy},
        faults=[{"kind": "node_crash", "node": 0, "at": 1.2, "duration": 0.4}],
    )
    return run_cell(scenario, Cell("t", "s", "redis", 1)).summary


def test_write_behind_crash_loses_unflushed_writes_and_write_update_none() -> None:
    """A 5 s flush interval never flushes in this 2.4 s run: every acknowledged write
    to node 0's keys before the crash is lost (the oracle counts them against the
    origin's final versions); write-update loses nothing."""
    behind = _write_behind_crash(
        {
            "read": "cache-aside",
            "write": "behind",
            "ttl": 60,
            "fill": "add",
            "flush": {"interval": 5, "batch": 1000},
            "client": {"timeout": 0.2},
        }
    )
    writes_before_crash = 0.5 * 400 * 1.2  # ~240 writes, about half to node 0
    assert 20 < int(behind["lost_writes"]) < writes_before_crash  # type: ignore[call-overload]
    update = _write_behind_crash(
        {"read": "cache-aside", "write": "update", "ttl": 60, "client": {"timeout": 0.2}}
    )
    assert update["lost_writes"] == 0


def _near_cache_run(faults: list[dict[str, object]]) -> RunResult:
    scenario = make_scenario(
        requests=None,
        duration=2.0,
        metrics={"interval": 0.5},
        keyspace={"keys": 50, "value_size": 64},
        workload={
            "mix": {"read": 0.9},
            "keys": {"distribution": "uniform"},
            "arrivals": {"process": "poisson", "rate": 400},
            "instances": 2,
        },
        origin=FAST_ORIGIN,
        strategies={
            "near": {
                "read": "cache-aside",
                "write": "invalidate",
                "ttl": 60,
                "near": {"capacity": 100, "ttl": 30, "invalidate": "bus"},
            }
        },
        faults=faults,
    )
    return run_cell(scenario, Cell("t", "near", "redis", 1))


def test_a_lost_bus_leaves_near_copies_stale() -> None:
    """With the bus working, invalidations reach the other instance's near cache
    within a millisecond; while its subscriber is disconnected they are lost and
    its copies stay stale until their 30 s near TTL."""
    healthy = _near_cache_run([]).summary
    run = _near_cache_run([{"kind": "bus_loss", "at": 0.5, "duration": 1.0}])
    lossy = run.summary
    assert any("bus subscribers disconnected" in n for n in run.notes)
    assert float(healthy["stale_read_ratio"]) < 0.01  # type: ignore[arg-type]
    assert float(lossy["stale_read_ratio"]) > 5 * max(float(healthy["stale_read_ratio"]), 0.005)  # type: ignore[arg-type]


def test_a_late_bus_leaves_near_copies_stale_for_the_delay() -> None:
    """bus_delay through the fault proxy: invalidations reach the other instance's
    near cache 200 ms late, so its reads of rewritten keys are stale meanwhile."""
    healthy = _near_cache_run([]).summary
    late = {"distribution": "constant", "value": 0.2}
    run = _near_cache_run([{"kind": "bus_delay", "at": 0.5, "duration": 1.0, "add": late}])
    assert any("bus delays messages" in n for n in run.notes)
    delayed = run.summary
    assert float(delayed["stale_read_ratio"]) > 5 * max(float(healthy["stale_read_ratio"]), 0.005)
    # A late invalidation still arrives: staleness lasts about the delay, not until the
    # near TTL (a lost one stays stale to the run's end, 0.5-1.5 s after its write). On
    # a busy machine it arrives later by the stalls of the subscriber's event loop and of
    # the proxy process holding it (as starved; seen: a p99 age of 1.0 s beside CPU hogs
    # and other work): the bound adds twice the stall the run measured itself, and a
    # run whose bound would reach 0.75 s (where lost invalidations' ages begin) says so.
    stalled = float(delayed["driver_lag_max"])
    bound = 0.2 + 0.1 + 2 * stalled
    if bound >= 0.75:
        pytest.skip(
            f"the run reports its load generator stalled {stalled * 1000:.0f} ms "
            "(driver_lag_max): a late invalidation cannot be told from a lost one"
        )
    assert float(delayed["staleness_age_p99"]) < bound
