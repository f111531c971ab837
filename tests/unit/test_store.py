"""lab.sim.store: exact LRU / FIFO / random eviction, lazy TTL expiry, counters."""

from __future__ import annotations

import numpy as np
import pytest

from lab.core import Versioned
from lab.sim.eviction import make_store
from lab.sim.store import RandomStore, Store


def v(version: int) -> Versioned:
    return Versioned(version, 100)


def filled(policy: str, capacity: int, keys: list[int]) -> Store:
    store = make_store(capacity, policy)  # type: ignore[arg-type]
    for k in keys:
        store.set(k, v(k), None, 0.0)
    return store


# --- LRU -------------------------------------------------------------------------------------


def test_lru_evicts_the_least_recently_used() -> None:
    store = filled("lru", 3, [1, 2, 3])
    assert store.get(1, 1.0) == v(1)  # 1 is now the most recent; 2 the least
    store.set(4, v(4), None, 2.0)
    assert store.key_list() == [3, 1, 4]
    assert store.get(2, 3.0) is None
    assert store.evictions == 1
    store.set(5, v(5), None, 4.0)
    assert store.key_list() == [1, 4, 5]
    assert store.evictions == 2


def test_lru_set_of_an_existing_key_refreshes_without_evicting() -> None:
    store = filled("lru", 3, [1, 2, 3])
    store.set(1, v(10), None, 1.0)
    assert len(store) == 3
    assert store.evictions == 0
    assert store.key_list() == [2, 3, 1]
    assert store.get(1, 2.0) == v(10)
    store.set(4, v(4), None, 3.0)
    assert store.key_list() == [3, 1, 4]


def test_contains_does_not_refresh_recency() -> None:
    store = filled("lru", 2, [1, 2])
    assert store.contains(1, 1.0)
    store.set(3, v(3), None, 2.0)
    assert not store.contains(1, 3.0)  # 1 was still the least recently used
    assert store.key_list() == [2, 3]
    assert store.get(1, 3.0) is None


def test_get_of_a_missing_key_changes_nothing() -> None:
    store = filled("lru", 2, [1, 2])
    assert store.get(99, 1.0) is None
    assert store.key_list() == [1, 2]
    assert (store.evictions, store.expirations) == (0, 0)


# --- FIFO ------------------------------------------------------------------------------------


def test_fifo_ignores_access() -> None:
    store = filled("fifo", 3, [1, 2, 3])
    assert store.get(1, 1.0) == v(1)
    assert store.get(1, 1.5) == v(1)
    store.set(4, v(4), None, 2.0)
    assert store.key_list() == [2, 3, 4]  # 1 was first in, accesses did not save it
    assert store.get(1, 3.0) is None
    assert store.evictions == 1


def test_fifo_overwrite_keeps_the_original_position() -> None:
    store = filled("fifo", 3, [1, 2, 3])
    store.set(1, v(11), None, 1.0)
    store.set(4, v(4), None, 2.0)
    assert store.key_list() == [2, 3, 4]


# --- random ----------------------------------------------------------------------------------


def _random_run(seed: int) -> tuple[list[int], int]:
    store = make_store(50, "random", seed=seed)
    assert isinstance(store, RandomStore)
    rng = np.random.default_rng(3)
    for i, k in enumerate(rng.integers(0, 400, size=3000).tolist()):
        if store.get(k, float(i)) is None:
            store.set(k, v(k), None, float(i))
        assert len(store) <= 50
    return store.key_list(), store.evictions


def test_random_eviction_stays_at_capacity() -> None:
    store = make_store(10, "random", seed=1)
    for k in range(100):
        store.set(k, v(k), None, 0.0)
        assert len(store) == min(k + 1, 10)
    assert store.evictions == 90
    survivors = store.key_list()
    assert len(set(survivors)) == 10
    for k in survivors:
        assert store.get(k, 1.0) == v(k)


def test_random_eviction_is_deterministic_for_a_seed() -> None:
    keys, evictions = _random_run(seed=7)
    assert _random_run(seed=7) == (keys, evictions)
    assert len(keys) == 50
    assert evictions > 0
    others = [_random_run(seed=s)[0] for s in (8, 9, 10)]
    assert any(sorted(o) != sorted(keys) for o in others)


def test_random_eviction_is_not_fifo_or_lru() -> None:
    store = make_store(100, "random", seed=0)
    for k in range(200):
        store.set(k, v(k), None, 0.0)
    survivors = set(store.key_list())
    assert survivors != set(range(100, 200))
    assert any(k < 100 for k in survivors)


def test_random_store_delete_and_expiry_keep_its_index_consistent() -> None:
    store = make_store(5, "random", seed=2)
    assert isinstance(store, RandomStore)
    for k in range(5):
        store.set(k, v(k), 1.0 if k % 2 else None, 0.0)
    assert store.delete(0)
    assert store.get(1, 5.0) is None  # expired: removed lazily
    for k in range(10, 40):
        store.set(k, v(k), None, 6.0)
        assert sorted(store._keys) == sorted(store.key_list())
        assert len(store) <= 5
    assert store.expirations == 1


# --- TTL -------------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["lru", "fifo", "random"])
def test_ttl_expires_exactly_at_the_boundary(policy: str) -> None:
    store = make_store(10, policy)  # type: ignore[arg-type]
    store.set("k", v(1), 5.0, 10.0)
    assert store.contains("k", 14.999999)
    assert store.get("k", 14.999999) == v(1)
    assert not store.contains("k", 15.0)
    assert store.expirations == 0
    assert store.get("k", 15.0) is None  # set at 10 with ttl 5: gone at 15
    assert store.expirations == 1
    assert store.key_list() == []
    assert store.get("k", 16.0) is None
    assert store.expirations == 1  # counted once


def test_expiry_is_lazy_and_expired_entries_hold_capacity() -> None:
    store = make_store(2, "lru")
    store.set(1, v(1), 1.0, 0.0)
    store.set(2, v(2), None, 0.0)
    assert len(store) == 2  # entry 1 expired at t=1 but nobody looked
    assert not store.contains(1, 5.0)
    assert len(store) == 2  # contains does not expire either
    store.set(3, v(3), None, 5.0)
    assert store.evictions == 1  # the expired entry is evicted, not expired
    assert store.expirations == 0
    assert store.key_list() == [2, 3]


def test_reset_ttl_on_overwrite() -> None:
    store = make_store(10, "lru")
    store.set("k", v(1), 1.0, 0.0)
    store.set("k", v(2), 10.0, 0.5)
    assert store.get("k", 5.0) == v(2)
    store.set("k", v(3), None, 6.0)
    assert store.get("k", 1e9) == v(3)


def test_zero_ttl_is_never_readable() -> None:
    store = make_store(10, "lru")
    store.set("k", v(1), 0.0, 3.0)
    assert store.get("k", 3.0) is None
    assert store.expirations == 1


# --- delete, unbounded -----------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["lru", "fifo", "random"])
def test_delete(policy: str) -> None:
    store = filled(policy, 3, [1, 2, 3])
    assert store.delete(2) is True
    assert store.delete(2) is False
    assert store.delete(99) is False
    assert store.get(2, 1.0) is None
    assert len(store) == 2
    assert (store.evictions, store.expirations) == (0, 0)
    store.set(4, v(4), None, 1.0)
    assert store.evictions == 0  # room was freed by the delete
    assert sorted(store.key_list()) == [1, 3, 4]


@pytest.mark.parametrize("policy", ["lru", "fifo", "random"])
def test_no_capacity_means_no_eviction(policy: str) -> None:
    store = make_store(None, policy)  # type: ignore[arg-type]
    for k in range(5000):
        store.set(k, v(k), None, 0.0)
    assert len(store) == 5000
    assert store.evictions == 0


# --- differential: LRU against a reference ---------------------------------------------------


class ReferenceLRU:
    """LRU by last-use timestamps: evict the key with the oldest last use."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.last_use: dict[int, int] = {}
        self.clock = 0

    def access(self, key: int) -> bool:
        self.clock += 1
        hit = key in self.last_use
        if not hit and len(self.last_use) >= self.capacity:
            victim = min(self.last_use, key=self.last_use.__getitem__)
            del self.last_use[victim]
        self.last_use[key] = self.clock
        return hit


@pytest.mark.parametrize(("capacity", "zipf_a"), [(50, 1.2), (200, 1.5), (1, 2.0)])
def test_lru_hits_match_a_reference_on_a_zipf_trace(capacity: int, zipf_a: float) -> None:
    rng = np.random.default_rng(11)
    trace = (rng.zipf(zipf_a, size=20_000) % 5000).tolist()
    store = Store(capacity, "lru")
    ref = ReferenceLRU(capacity)
    hits = ref_hits = 0
    for t, k in enumerate(trace):
        now = float(t)
        if store.get(k, now) is not None:
            hits += 1
        else:
            store.set(k, v(k), None, now)
        ref_hits += ref.access(k)
    assert hits == ref_hits
    assert 0 < hits < len(trace)
    assert set(store.key_list()) == set(ref.last_use)
    assert store.key_list() == sorted(ref.last_use, key=ref.last_use.__getitem__)
    assert store.evictions == len(trace) - hits - len(store)
