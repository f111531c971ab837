"""Active expiry (lab/sim/expiry.py): Redis 7.0's cycle on a simulated node."""

from __future__ import annotations

from lab.core import Versioned
from lab.runner import run_cell
from lab.scenario import Cell
from lab.sim.eviction import RedisStore, make_store
from lab.sim.expiry import KEYS_PER_LOOP
from tests.helpers import make_scenario

V = Versioned(1, 100)


def redis_store() -> RedisStore:
    store = make_store(None, "noeviction", 1)
    assert isinstance(store, RedisStore)
    return store


def test_a_cycle_repeats_while_many_sampled_keys_had_expired() -> None:
    store = redis_store()
    for i in range(5000):
        store.set(i, V, 1.0, 0.0)
    store.cron(2.0)  # all expired: loop after loop (9 ms of the 25 allowed)
    assert len(store) == 0 and store.expirations == 5000 and not store.expiry.time_limit_hit


def test_few_expired_keys_stop_the_cycle_after_one_loop() -> None:
    store = redis_store()
    for i in range(5000):
        store.set(i, V, 100.0 if i % 20 else 1.0, 0.0)  # 5% expire at 1 s
    store.cron(2.0)
    assert store.expirations <= KEYS_PER_LOOP  # 5% < 10%: no repeat


def test_the_cursor_moves_on_so_every_key_is_reached() -> None:
    store = redis_store()
    for i in range(400):
        store.set(i, V, 1.0 if i % 20 == 0 else 100.0, 0.0)
    for tick in range(200):
        store.cron(2.0 + tick / 10)
    assert store.expirations == 20  # every expired key found by scanning


def test_the_time_limit_hands_over_to_fast_cycles() -> None:
    store = redis_store()
    for i in range(100_000):
        store.set(i, V, 1.0, 0.0)
    store.cron(2.0)
    assert store.expiry.time_limit_hit
    left = len(store)
    store.get("other", 2.01)  # a command: a fast cycle runs first
    assert len(store) < left


def test_exact_stores_stay_lazy_and_redis_policies_expire_actively_in_a_run() -> None:
    def keys(eviction: str) -> int:
        scenario = make_scenario(
            requests=12_000,
            keyspace={"keys": 20_000},
            workload={"mix": {"read": 0.9}, "arrivals": {"process": "poisson", "rate": 3000}},
            strategies={"a": {"read": "cache-aside", "write": "invalidate", "ttl": "1s"}},
            topology={"eviction": eviction},
        )
        return int(run_cell(scenario, Cell("t", "a", "sim", 1)).summary["cache_keys"])

    assert keys("noeviction") < keys("lru") / 2
