"""Exact simulated timelines (SimPy-style: assert the log, to the microsecond)."""

from __future__ import annotations

import itertools
from typing import Any

import simpy

from lab.client import ClientLoop
from lab.core import Key, Versioned
from lab.metrics.oracle import Oracle
from lab.metrics.recorder import Recorder
from lab.patterns import build_strategy
from lab.scenario import StrategySpec
from lab.sim.cluster import SimCluster
from lab.sim.origin import SimOrigin
from lab.sim.runtime import SimRuntime


def constant(x: float) -> Any:
    return itertools.repeat(x).__next__


class Logged:
    """Wraps a cache or origin and logs (completion time in ms, op, key, result)."""

    def __init__(self, inner: Any, rt: SimRuntime, log: list[tuple[float, str, Key, Any]]):
        self.inner, self.rt, self.log = inner, rt, log

    def __getattr__(self, name: str) -> Any:
        # operations the timeline does not log (delete_if_equal, incr, ...) go straight through
        return getattr(self.inner, name)

    def _done(self, op: str, key: Key, result: Any) -> Any:
        shown = f"v{result.version}" if isinstance(result, Versioned) else result
        self.log.append((round(self.rt.now() * 1000, 6), op, key, shown))
        return result

    async def get(self, key: Key) -> Any:
        return self._done("get", key, await self.inner.get(key))

    async def set(self, key: Key, value: Versioned, ttl: Any = None, nx: bool = False) -> Any:
        return self._done("set", key, await self.inner.set(key, value, ttl, nx))

    async def delete(self, key: Key) -> Any:
        return self._done("delete", key, await self.inner.delete(key))

    async def read(self, key: Key) -> Any:
        return self._done("origin.read", key, await self.inner.read(key))

    async def write(self, key: Key) -> Any:
        return self._done("origin.write", key, await self.inner.write(key))


def run_requests(
    write: str, requests: list[tuple[bool, int]], ttl: float | None = None
) -> tuple[list[Any], Recorder, Oracle]:
    env = simpy.Environment()
    rt = SimRuntime(env)
    log: list[Any] = []
    cluster = SimCluster(
        env,
        nodes=1,
        capacity=None,
        eviction="lru",
        sharding="ketama",
        rtt=constant(0.001),
        service=constant(0.0),
    )
    origin = SimOrigin(
        env,
        value_size=100,
        read_latency=constant(0.005),
        write_latency=constant(0.008),
        concurrency=1,
    )
    oracle = Oracle()
    recorder = Recorder(oracle, interval=1.0, warmup=0.0)
    spec = StrategySpec(read="cache-aside", write=write, ttl=ttl)
    strategy = build_strategy("s", spec, Logged(cluster, rt, log), Logged(origin, rt, log), rt)
    loop = ClientLoop(rt, [strategy], oracle, recorder, end_time=None)
    rt.run(loop.run(loop.closed_loop(iter(requests), clients=1, think=None)))
    return log, recorder, oracle


def test_cache_aside_with_invalidate_exact_timeline() -> None:
    log, recorder, oracle = run_requests(
        "invalidate", [(False, 1), (False, 1), (True, 1), (False, 1)]
    )
    assert log == [
        (1.0, "get", 1, None),  # miss: one RTT
        (6.0, "origin.read", 1, "v0"),  # 5 ms origin read
        (7.0, "set", 1, True),  # fill the cache
        (8.0, "get", 1, "v0"),  # second read hits
        (16.0, "origin.write", 1, "v1"),  # 8 ms commit
        (17.0, "delete", 1, None),  # invalidate; the write is acknowledged here
        (18.0, "get", 1, None),  # so the next read misses...
        (23.0, "origin.read", 1, "v1"),  # ...and loads the new version
        (24.0, "set", 1, True),
    ]
    summary = recorder.summary()
    assert (summary["reads"], summary["hits"], summary["writes"]) == (3, 1, 1)
    assert summary["stale_reads"] == 0
    assert oracle.latest(1) == 1


def test_write_around_leaves_the_old_version_and_the_oracle_flags_it() -> None:
    log, recorder, _ = run_requests("around", [(False, 1), (True, 1), (False, 1)], ttl=60)
    assert log == [
        (1.0, "get", 1, None),
        (6.0, "origin.read", 1, "v0"),
        (7.0, "set", 1, True),
        (15.0, "origin.write", 1, "v1"),  # acknowledged at 15 ms, cache untouched
        (16.0, "get", 1, "v0"),  # read started at 15 ms: stale by 0 ms, lag 1
    ]
    summary = recorder.summary()
    assert summary["stale_reads"] == 1
    assert summary["version_lag_max"] == 1
    assert summary["staleness_age_p50"] == 0.0


def test_write_update_sets_the_new_version() -> None:
    log, recorder, _ = run_requests("update", [(False, 2), (True, 2), (False, 2)], ttl=60)
    assert log[-3:] == [
        (15.0, "origin.write", 2, "v1"),
        (16.0, "set", 2, True),
        (17.0, "get", 2, "v1"),
    ]
    assert recorder.summary()["stale_reads"] == 0


def test_ttl_expiry_is_exact() -> None:
    # set completes at 7 ms with a 10 ms TTL, applied when the set is invoked (6 ms):
    # a read invoked at 15.999 ms hits, one invoked at 16 ms misses
    log, _, _ = run_requests("around", [(False, 3)] * 4, ttl=0.010)
    gets = [entry for entry in log if entry[1] == "get"]
    # reads start at 0, 7, 8, 9 ms; all within the TTL that expires at 16 ms
    assert [g[3] for g in gets] == [None, "v0", "v0", "v0"]
    log, _, _ = run_requests("around", [(False, 3)] * 12, ttl=0.010)
    gets = [entry for entry in log if entry[1] == "get"]
    # reads at 7..15 ms hit; the read invoked at 16 ms finds the key expired
    assert [g[0] for g in gets if g[3] is None] == [1.0, 17.0]


def test_origin_concurrency_queues_requests_in_order() -> None:
    env = simpy.Environment()
    rt = SimRuntime(env)
    origin = SimOrigin(
        env,
        value_size=1,
        read_latency=constant(0.010),
        write_latency=constant(0.010),
        concurrency=2,
    )
    done: list[float] = []

    async def reader() -> None:
        await origin.read(1)
        done.append(round(rt.now() * 1000, 6))

    async def main() -> None:
        for _ in range(5):
            rt.spawn(reader())
        await rt.sleep(1)

    rt.run(main())
    # two workers: 10, 10, 20, 20, 30 ms
    assert done == [10.0, 10.0, 20.0, 20.0, 30.0]


def test_a_single_node_serves_one_operation_at_a_time() -> None:
    env = simpy.Environment()
    rt = SimRuntime(env)
    cluster = SimCluster(
        env,
        nodes=1,
        capacity=None,
        eviction="lru",
        sharding="ketama",
        rtt=constant(0.002),
        service=constant(0.001),
    )
    done: list[float] = []

    async def getter(key: int) -> None:
        await cluster.get(key)
        done.append(round(rt.now() * 1000, 6))

    async def main() -> None:
        for key in range(3):
            rt.spawn(getter(key))
        await rt.sleep(1)

    rt.run(main())
    # each arrives at 1 ms; served 1-2, 2-3, 3-4 ms; replies 1 ms later
    assert done == [3.0, 4.0, 5.0]
