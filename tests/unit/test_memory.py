"""Bytes as Redis 7 counts them, and stores that evict by bytes."""

from __future__ import annotations

import pytest

from lab.codec import encode
from lab.core import Versioned
from lab.runner import run_cell
from lab.scenario import Cell
from lab.sim.eviction import make_store
from lab.sim.memory import Accounting, HashTable, RedisMemory, encoded_length, size_class
from tests.helpers import make_scenario


def test_jemalloc_size_classes() -> None:
    assert [size_class(n) for n in (1, 8, 9, 16, 17, 48, 100, 128, 129, 160, 161)] == [
        8, 8, 16, 16, 32, 48, 112, 128, 160, 160, 192,
    ]  # fmt: skip
    assert [size_class(n) for n in (257, 1025, 4097, 14337, 16385, 65537)] == [
        320, 1280, 5120, 16384, 20480, 81920,
    ]  # fmt: skip


def test_an_entry_is_dict_entry_key_and_value() -> None:
    model = RedisMemory()
    # dictEntry 32 + "key:1" sds5 (1+5+1 -> 8) + EMBSTR (16+3+20+1 -> 48)
    assert model.entry(5, 20, ttl=False) == 32 + 8 + 48
    # RAW: robj 16 + sdshdr16 (5+1000+1 -> 1024); with a TTL one more dictEntry
    assert model.entry(9, 1000, ttl=True) == 32 + 16 + 16 + 1024 + 32
    assert RedisMemory(cluster=True).entry(5, 20, ttl=False) == 48 + 8 + 48


@pytest.mark.parametrize("size", [1, 5, 20, 50, 95, 96, 1000])
def test_the_encoded_length_is_the_codecs(size: int) -> None:
    for value in (Versioned(7, size), Versioned(123456, size, expiry=1234.567, delta=0.25)):
        assert encoded_length(value) == len(encode(value))


def test_a_dict_doubles_when_full_and_waits_near_the_limit() -> None:
    table = HashTable()
    grown = [table.before_add(n, float("inf")) for n in range(9)]
    assert table.buckets == 16 and sum(grown) == 16 * 8
    tight = HashTable()
    for n in range(16):
        tight.before_add(n, float("inf"))
    assert tight.before_add(16, 100.0) == 0 and tight.buckets == 16  # 16/16 < 1.618
    assert tight.before_add(26, 100.0) == 16 * 8  # overdue: grows anyway


def accounted(store: object) -> int:
    """What the accounting should hold: its entries plus its tables, recomputed."""
    memory = store.memory  # type: ignore[attr-defined]
    assert isinstance(memory, Accounting)
    entries = sum(size for size, _ in memory._entries.values())
    return entries + memory._main.bytes + memory._expires.bytes


@pytest.mark.parametrize("policy", ["lru", "fifo", "random"])
def test_exact_stores_evict_by_bytes(policy: str) -> None:
    store = make_store(None, policy, 1, budget=200_000, memory=RedisMemory())  # type: ignore[arg-type]
    for i in range(2000):
        store.set(i, Versioned(1, 100 + (i % 7) * 300), 60.0 if i % 2 else None, 0.0)
        assert store.used_bytes <= 200_000
        assert store.used_bytes == accounted(store)
    assert store.evictions > 1000 and len(store) > 100
    for i in range(2000):
        store.delete(i)
    assert len(store) == 0 and store.used_bytes == accounted(store) == 4 * 8 * 2


def test_exact_lru_by_bytes_evicts_the_least_recent_first() -> None:
    store = make_store(None, "lru", budget=9_000, memory=RedisMemory())  # 5 of ~1.6 KB
    for i in range(5):
        store.set(i, Versioned(1, 1500), None, 0.0)
    store.get(0, 0.0)  # 0 is now the most recent
    store.set(5, Versioned(1, 1500), None, 0.0)
    assert store.key_list() == [2, 3, 4, 0, 5]  # 1 went, the least recently used


def test_a_budget_needs_a_model() -> None:
    with pytest.raises(ValueError, match="memory model"):
        make_store(None, "lru", budget=1000)


def test_a_byte_capacity_run_holds_its_budget_and_says_how_it_counts() -> None:
    scenario = make_scenario(
        requests=20_000,
        keyspace={
            "keys": 5000,
            "value_size": {"distribution": "lognormal", "median": "1KiB", "p99": "16KiB"},
        },
        workload={"mix": {"read": 0.95}, "keys": {"distribution": "zipf", "s": 0.9}},
        topology={"nodes": 2, "capacity": "1MiB"},
    )
    cell = Cell("t", "cache-aside", "sim", 3)
    summary = run_cell(scenario, cell).summary
    assert summary["memory_accounting"].startswith("redis-7.0")
    assert 1.8 * 2**20 < summary["cache_memory"] <= 2 * 2**20
    assert summary["evictions"] > 1000
    by_size = summary["evictions_by_size"]
    assert sum(by_size.values()) == summary["evictions"]  # counted after the warm-up too
    assert by_size["<=1KiB"] > 0 and by_size["<=16KiB"] > 0
    assert 500 < summary["evicted_value_size_mean"] < 10_000
    assert run_cell(scenario, cell).summary["hits"] == summary["hits"]  # deterministic


def test_valkey_model_counts_glibc_chunks_and_embedding() -> None:
    """Valkey 9 (glibc): one embedded allocation up to 128 B, else robj+key and an sds."""
    from lab.sim.valkey_memory import ValkeyMemory, usable

    assert [usable(n) for n in (1, 24, 25, 40, 41)] == [24, 24, 40, 40, 56]
    model = ValkeyMemory()
    assert model.entry(8, 16, ttl=False) == usable(8 + 11 + 20) == 40  # embedded
    assert model.entry(8, 16, ttl=True) == usable(8 + 11 + 8 + 20)  # + the expire
    assert model.entry(8, 200, ttl=False) == usable(16 + 11) + usable(204) + 8  # raw
    assert model.entry(8, 1000, ttl=False) < RedisMemory().entry(8, 1000, ttl=False)


def test_valkey_table_grows_by_buckets_of_seven() -> None:
    from lab.sim.valkey_memory import ValkeyTable

    table, total = ValkeyTable(), 0
    for count in range(2000):
        total += table.before_add(count, float("inf"))
    assert table.buckets == 512 and total == table.bytes  # 2000 keys: 512 buckets of 7
    for count in range(1999, 50, -1):
        total += table.after_remove(count)
    assert table.buckets < 512 and total == table.bytes


def test_memory_model_setting_keeps_old_hashes_and_names_the_model() -> None:
    topology = {"nodes": 1, "capacity": "256KiB", "eviction": "allkeys-lru"}
    base = make_scenario(
        requests=10_000, keyspace={"keys": 5000, "value_size": 200}, topology=topology
    )
    redis = make_scenario(
        requests=10_000,
        keyspace={"keys": 5000, "value_size": 200},
        topology={**topology, "memory_model": "redis7"},
    )
    valkey = make_scenario(
        requests=10_000,
        keyspace={"keys": 5000, "value_size": 200},
        topology={**topology, "memory_model": "valkey9"},
    )
    assert len({base.config_hash(), redis.config_hash(), valkey.config_hash()}) == 3
    cell = Cell("t", "cache-aside", "sim", 1)
    old, new = run_cell(base, cell).summary, run_cell(valkey, cell).summary
    assert old["memory_accounting"].startswith("redis-7.0")
    assert new["memory_accounting"].startswith("valkey-9")
    assert new["cache_keys"] > old["cache_keys"]  # a Valkey key costs less (281 vs 312 B)
    assert run_cell(valkey, cell).summary["hits"] == new["hits"]  # deterministic
