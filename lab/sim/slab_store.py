"""`eviction: memcached-slru` in the simulator: a store with memcached's memory.

Each node is a `lab.slabs.SlabCache` sized by `topology.memcached` (memory,
growth factor, minimum chunk), so the simulator evicts what real memcached
evicts at the same memory: items are as large as memcached makes them (key
name and the encoded value, `lab.codec`), and TTLs follow memcached's whole
seconds (`lab.exptime`).
"""

from __future__ import annotations

from lab.codec import encode
from lab.core import Key, Versioned
from lab.core.values import key_name
from lab.exptime import expires_at
from lab.scenario import MemcachedSpec
from lab.sim.memory import SizeTally
from lab.slabs import SlabCache, item_size


class SlabStore:
    """The interface of `lab.sim.store.Store` over a SlabCache (one memcached node)."""

    policy = "memcached-slru"
    expirations = 0
    """Expired items are reclaimed inside the SlabCache (`cache.reclaimed`)."""

    def __init__(self, spec: MemcachedSpec | None, seed: int = 0) -> None:
        spec = spec or MemcachedSpec()
        if spec.slab_automove:
            raise ValueError("memcached-slru does not model slab_automove: set it to false")
        self.cache = SlabCache(spec.memory, spec.growth_factor, spec.min_chunk)
        self.evicted = SizeTally()
        """Evicted values by size (the simulator resets it at the end of the warm-up)."""
        self.cache.on_evict = self._evicted

    def get(self, key: Key, now: float) -> Versioned | None:
        value = self.cache.get(key, now)
        return value if isinstance(value, Versioned) else None

    def contains(self, key: Key, now: float) -> bool:
        return self.cache.contains(key, now)

    def set(self, key: Key, value: Versioned, ttl: float | None, now: float) -> None:
        size = item_size(len(key_name(key)), len(encode(value)))
        self.cache.set(key, value, size, expires_at(ttl, now), now)

    def delete(self, key: Key) -> bool:
        return self.cache.delete(key)

    @property
    def evictions(self) -> int:
        return self.cache.evictions

    def _evicted(self, value: object) -> None:
        if isinstance(value, Versioned):
            self.evicted.add(value.size)

    @property
    def used_bytes(self) -> int:
        """Item bytes held, as memcached's ``stats bytes`` counts them."""
        return self.cache.bytes

    def values(self) -> list[Versioned]:
        return [item.value for item in self.cache.items.values()]  # type: ignore[misc]

    def __len__(self) -> int:
        return len(self.cache)

    def key_list(self) -> list[Key]:
        return list(self.cache.items)  # type: ignore[arg-type]
