"""In-memory key stores with a capacity (keys or bytes), an eviction policy and TTL expiry.

Expiry is lazy (checked on access), as in Redis for keys nobody samples;
expired entries still occupy capacity until accessed or evicted. Entries are
(value, expires_at) tuples; `inf` means no TTL. With a `memory` accounting
(`lab/sim/memory.py`) the store knows the bytes it holds as Redis counts them, and a
byte `budget` evicts until the data fits. These stores are exact (LRU, FIFO,
uniformly random): the reference for theory checks. Redis's own sampled policies are
in `lab/sim/eviction.py`.
"""

from __future__ import annotations

import random
from collections import OrderedDict

from lab.core import Key, Versioned
from lab.scenario import Eviction as Eviction
from lab.sim.memory import Accounting, SizeTally

INF = float("inf")
Entry = tuple[Versioned, float]


class Store:
    """Exact LRU (or FIFO) with lazy TTL expiry; counts evictions and expirations."""

    def __init__(
        self,
        capacity: int | None,
        policy: Eviction = "lru",
        seed: int = 0,
        *,
        memory: Accounting | None = None,
        budget: int | None = None,
    ) -> None:
        self.capacity = capacity if capacity is not None else 1 << 62
        self.budget = budget if budget is not None else 1 << 62
        """The most bytes of data the store holds after a write (with `memory`)."""
        self.memory = memory
        self.evicted = SizeTally()
        """Evicted values by size (kept with a memory accounting only)."""
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
            self._expire(key)
            return None
        if self._touch:
            self._data.move_to_end(key)
        return entry[0]

    def contains(self, key: Key, now: float) -> bool:
        """Whether a live entry exists, without counting as an access."""
        entry = self._data.get(key)
        return entry is not None and entry[1] > now

    def _expire(self, key: Key) -> None:
        """Remove an entry found expired (lazily here; actively in `lab/sim/expiry.py`)."""
        del self._data[key]
        self.expirations += 1
        if self.memory is not None:
            self.memory.remove(key)

    def set(self, key: Key, value: Versioned, ttl: float | None, now: float) -> None:
        data = self._data
        data[key] = (value, now + ttl if ttl is not None else INF)
        if self._touch:
            data.move_to_end(key)
        memory = self.memory
        if memory is not None:
            memory.add(key, value, ttl is not None)
            while data and (memory.used > self.budget or len(data) > self.capacity):
                self._evict()
        elif len(data) > self.capacity:
            self._evict()

    def delete(self, key: Key) -> bool:
        if self.memory is not None:
            self.memory.remove(key)
        return self._data.pop(key, None) is not None

    @property
    def used_bytes(self) -> int:
        """Data memory held (0 without a memory accounting)."""
        return self.memory.used if self.memory is not None else 0

    def _evict(self) -> None:
        key, entry = self._data.popitem(last=False)
        self.evictions += 1
        if self.memory is not None:
            self.memory.remove(key)
            self.evicted.add(entry[0].size)

    def __len__(self) -> int:
        return len(self._data)

    def key_list(self) -> list[Key]:
        return list(self._data)

    def values(self) -> list[Versioned]:
        """The values held (expired ones not yet removed included)."""
        return [entry[0] for entry in self._data.values()]


class RandomStore(Store):
    """Evicts a uniformly random key (memcached-free, Redis allkeys-random)."""

    def __init__(
        self,
        capacity: int | None,
        policy: Eviction = "random",
        seed: int = 0,
        *,
        memory: Accounting | None = None,
        budget: int | None = None,
    ) -> None:
        super().__init__(capacity, policy, seed, memory=memory, budget=budget)
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
        entry = self._data.pop(victim)
        self.evictions += 1
        if self.memory is not None:
            self.memory.remove(victim)
            self.evicted.add(entry[0].size)
