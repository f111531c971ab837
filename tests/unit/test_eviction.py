"""Redis's eviction policies in the simulator (lab/sim/eviction.py): the mechanisms,
each on a small store; tests/differential/test_eviction_sim_vs_real.py compares hit
ratios with a real Redis."""

from __future__ import annotations

import random

import pytest

from lab.core import Versioned
from lab.core.errors import CacheRefused
from lab.runner import run_cell
from lab.scenario import Cell
from lab.sim.eviction import HashedKeys, RedisStore, make_store
from lab.sim.memory import HashTable, RedisMemory
from tests.helpers import make_scenario

V = Versioned(1, 100)


def store(policy: str, capacity: int = 100, seed: int = 0) -> RedisStore:
    made = make_store(capacity, policy, seed)  # type: ignore[arg-type]
    assert isinstance(made, RedisStore)
    return made


def test_redis_evicts_before_the_next_command_not_after_the_write() -> None:
    s = store("allkeys-lru", capacity=10)
    for i in range(11):
        s.set(i, V, None, 0.0)
    assert len(s) == 11 and s.evictions == 0  # one over, as after a SET on Redis
    s.get(0, 0.0)
    assert len(s) == 10 and s.evictions == 1


def test_sampled_lru_prefers_idle_keys() -> None:
    s = store("allkeys-lru", capacity=1000, seed=1)
    for i in range(1000):
        s.set(i, V, None, float(i // 100))  # 10 seconds of fills: keys 0..99 the oldest
    for i in range(1000, 1500):
        s.set(i, V, None, 10.0)
        s.get(i, 10.0)
    old_left = sum(1 for k in range(500) if k in s._data)
    new_left = sum(1 for k in range(500, 1000) if k in s._data)
    assert old_left < new_left / 2  # mostly the idle ones went, not uniformly


def test_lfu_counters_grow_logarithmically_and_decay_by_the_minute() -> None:
    s = store("allkeys-lfu", seed=3)
    s.set("k", V, None, 0.0)
    assert s._meta["k"] & 255 == 5  # LFU_INIT_VAL
    for _ in range(1000):
        s.get("k", 1.0)
    counter = s._meta["k"] & 255
    assert 14 <= counter <= 23  # redis.conf's table, log factor 10: 1,000 hits -> 18
    assert s._lfu_decayed(s._meta["k"], 1.0 + 60 * 7) == counter - 7  # 1 per minute
    s.set("k", V, None, 2.0)  # an overwrite keeps the counter (and counts as an access)
    assert s._meta["k"] & 255 >= counter


def test_lfu_keeps_the_frequent_keys() -> None:
    s = store("allkeys-lfu", capacity=50, seed=4)
    for _ in range(20):
        for hot in range(20):
            s.set(hot, V, None, 0.0) if s.get(hot, 0.0) is None else None
    for cold in range(100, 400):
        s.set(cold, V, None, 0.0)
    assert sum(1 for hot in range(20) if hot in s._data) >= 18


def test_volatile_ttl_evicts_the_soonest_to_expire() -> None:
    s = store("volatile-ttl", capacity=200, seed=5)
    for i in range(200):
        s.set(i, V, 100.0 + i, 0.0)
    for i in range(1000, 1100):
        s.set(i, V, 5000.0, 0.0)
        s.get(i, 0.0)
    soon = sum(1 for k in range(100) if k in s._data)
    later = sum(1 for k in range(100, 200) if k in s._data)
    assert soon < later / 2 and all(k in s._data for k in range(1000, 1100))


def test_volatile_policies_never_evict_keys_without_ttl_and_then_refuse() -> None:
    s = store("volatile-lru", capacity=10)
    for i in range(10):
        s.set(i, V, None, 0.0)
    s.set(10, V, None, 0.0)  # taken: Redis checks before the write
    with pytest.raises(CacheRefused, match="OOM"):
        s.set(11, V, None, 0.0)
    assert s.evictions == 0 and s.get(0, 0.0) is not None


def test_noeviction_refuses_writes_but_serves_reads_and_deletes() -> None:
    s = store("noeviction", capacity=3)
    for i in range(4):
        s.set(i, V, None, 0.0)
    with pytest.raises(CacheRefused):
        s.set(4, V, None, 0.0)
    assert s.get(1, 0.0) is not None
    assert s.delete(1) and s.delete(2)
    s.set(4, V, None, 0.0)  # room again


def test_a_refused_fill_is_a_cache_error_the_strategy_absorbs() -> None:
    scenario = make_scenario(
        requests=3000,
        keyspace={"keys": 500},
        workload={"mix": {"read": 1.0}, "arrivals": {"process": "poisson", "rate": 2000}},
        topology={"capacity": 100, "eviction": "noeviction"},
    )
    summary = run_cell(scenario, Cell("t", "cache-aside", "sim", 1)).summary
    assert summary["errors"] == 0
    assert summary["cache_errors"] > 500 and summary["cache_keys"] == 101
    assert summary["evictions"] == 0


def test_sampling_follows_the_hash_table() -> None:
    table = HashTable()
    keys = HashedKeys(table, seed=1)
    for i in range(3000):
        table.before_add(i, float("inf"))
        keys.add(i)
    rng = random.Random(2)
    counts: dict[int, int] = {}
    for _ in range(20_000):
        sample = keys.sample(rng, 5)
        assert len(sample) == 5
        for key in sample:
            counts[key] = counts.get(key, 0) + 1
    assert len(counts) > 2900  # every key gets sampled...
    spread = sorted(counts.values())
    assert spread[-30] > 3 * spread[30]  # ...but some far more often than others


@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-ttl"])
def test_redis_policies_are_deterministic_per_seed_in_bytes(policy: str) -> None:
    def run(seed: int) -> list[int]:
        s = make_store(None, policy, seed, budget=60_000, memory=RedisMemory())  # type: ignore[arg-type]
        rng = random.Random(9)
        for t in range(5000):
            key = rng.randrange(600)
            if s.get(key, t / 1000) is None:
                s.set(key, Versioned(1, 50 + key % 400), 30.0, t / 1000)
            assert s.used_bytes <= 60_000 + 2000
        return sorted(s.key_list())  # type: ignore[type-var]

    assert run(1) == run(1)
    assert run(1) != run(2)
