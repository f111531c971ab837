"""In-memory key stores with a key capacity, an eviction policy and TTL expiry.

Expiry is lazy (checked on access), as in Redis for keys nobody samples;
expired entries still occupy capacity until accessed or evicted. Entries are
(value, expires_at) tuples; `inf` means no TTL.
"""

from __future__ import annotations

import random
from collections import OrderedDict

from lab.core import Key, Versioned
from lab.scenario import Eviction as Eviction

INF = float("inf")
Entry = tuple[Versioned, float]


class Store:
    """Exact LRU (or FIFO) with lazy TTL expiry; counts evictions and expirations."""

    def __init__(self, capacity: int | None, policy: Eviction = "lru", seed: int = 0) -> None:
        self.capacity = capacity if capacity is not None else 1 << 62
        self.policy = policy
        self.evictions = 0
        self.expirations = 0
        self._data: OrderedDict[Key, Entry] = OrderedDict()
        self._touch = policy == "lru"

    def get(self, key: Key, now: float) -> Versioned | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._data[key]
            self.expirations += 1
            return None
        if self._touch:
            self._data.move_to_end(key)
        return entry[0]

    def contains(self, key: Key, now: float) -> bool:
        """Whether a live entry exists, without counting as an access."""
        entry = self._data.get(key)
        return entry is not None and entry[1] > now

    def set(self, key: Key, value: Versioned, ttl: float | None, now: float) -> None:
        data = self._data
        data[key] = (value, now + ttl if ttl is not None else INF)
        if self._touch:
            data.move_to_end(key)
        if len(data) > self.capacity:
            self._evict()

    def delete(self, key: Key) -> bool:
        return self._data.pop(key, None) is not None

    def _evict(self) -> None:
        self._data.popitem(last=False)
        self.evictions += 1

    def __len__(self) -> int:
        return len(self._data)

    def key_list(self) -> list[Key]:
        return list(self._data)


class RandomStore(Store):
    """Evicts a uniformly random key (memcached-free, Redis allkeys-random)."""

    def __init__(self, capacity: int | None, policy: Eviction = "random", seed: int = 0) -> None:
        super().__init__(capacity, policy, seed)
        self._touch = False
        self._rng = random.Random(seed)
        self._index: dict[Key, int] = {}
        self._keys: list[Key] = []

    def set(self, key: Key, value: Versioned, ttl: float | None, now: float) -> None:
        if key not in self._index:
            self._index[key] = len(self._keys)
            self._keys.append(key)
        super().set(key, value, ttl, now)

    def get(self, key: Key, now: float) -> Versioned | None:
        value = super().get(key, now)
        if value is None and key in self._index and key not in self._data:
            self._forget(key)
        return value

    def delete(self, key: Key) -> bool:
        if key in self._index:
            self._forget(key)
        return super().delete(key)

    def _forget(self, key: Key) -> None:
        i = self._index.pop(key)
        last = self._keys.pop()
        if last != key:
            self._keys[i] = last
            self._index[last] = i

    def _evict(self) -> None:
        victim = self._keys[self._rng.randrange(len(self._keys))]
        self._forget(victim)
        del self._data[victim]
        self.evictions += 1


def make_store(capacity: int | None, policy: Eviction, seed: int = 0) -> Store:
    """The store for an eviction policy name."""
    if policy == "random":
        return RandomStore(capacity, policy, seed)
    return Store(capacity, policy, seed)
