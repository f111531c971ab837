"""Near caches: every app instance keeps a small local cache in front of the shared one.

A local hit costs nothing on the network, but each instance holds its own
copy, so a write elsewhere leaves it stale until its local TTL ends, unless
the writer publishes an invalidation that every instance applies when it
arrives (`invalidate: bus`). Redis pub/sub delivers at most once: a lost or
late message leaves a stale local copy for up to the local TTL. A slow local
fill can also land after the invalidation it raced with.

`near: {capacity: 1000, ttl: 10s, invalidate: bus}` wraps any read and write
path of a strategy.
"""

from __future__ import annotations

import random

from lab.core import Bus, Key, Read, Versioned
from lab.patterns.base import ReadPath, WritePath
from lab.scenario import NearSpec
from lab.sim.store import make_store

CHANNEL = "cachelab:invalidate"


class NearCache:
    """One instance's local cache, subscribed to invalidations when asked to."""

    def __init__(self, spec: NearSpec, bus: Bus | None, seed: int) -> None:
        self.spec = spec
        self.store = make_store(spec.capacity, "lru", seed)
        self.bus = bus if spec.invalidate == "bus" else None
        self._random = random.Random(seed)
        if self.bus is not None:
            self.bus.subscribe(CHANNEL, self._on_message)

    def drop(self, key: Key) -> None:
        self.store.delete(key)

    def _on_message(self, key: Key) -> None:
        if self.spec.loss and self._random.random() < self.spec.loss:
            return  # this subscriber was disconnected when it was published
        self.drop(key)


class NearReader(ReadPath):
    """Read the local copy first; on a local miss, read through the wrapped read path."""

    def __init__(self, inner: ReadPath, near: NearCache) -> None:
        self.__dict__.update(inner.__dict__)
        self.inner = inner
        self.near = near

    def needs(self) -> frozenset[str]:
        pubsub = frozenset({"pubsub"}) if self.near.spec.invalidate == "bus" else frozenset()
        return self.inner.needs() | pubsub

    async def read(self, key: Key) -> Read:
        now = self.rt.now()
        local = self.near.store.get(key, now)
        if local is not None:
            self.metrics.count("near_hits")
            return Read(local, "near")
        got = await self.inner.read(key)
        self.near.store.set(key, got.value, self.near.spec.ttl, self.rt.now())
        return got

    async def close(self) -> None:
        await self.inner.close()


class NearWriter(WritePath):
    """Write through the wrapped write path, drop the local copy, tell the others."""

    def __init__(self, inner: WritePath, near: NearCache) -> None:
        self.__dict__.update(inner.__dict__)
        self.inner = inner
        self.near = near

    def needs(self) -> frozenset[str]:
        return self.inner.needs()

    async def write(self, key: Key) -> Versioned:
        stored = await self.inner.write(key)
        self.near.drop(key)
        if self.near.bus is not None:
            await self.near.bus.publish(CHANNEL, key)
        return stored

    async def close(self) -> None:
        await self.inner.close()
