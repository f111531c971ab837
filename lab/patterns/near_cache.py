"""Near caches: every app instance keeps a small local cache in front of the shared one.

A local hit costs nothing on the network, but each instance holds its own
copy, so a write elsewhere leaves it stale until its local TTL ends, unless
the writer publishes an invalidation that every instance applies when it
arrives (`invalidate: bus`). Redis pub/sub delivers at most once: a lost or
late message leaves a stale local copy for up to the local TTL. A slow local
fill can also land after the invalidation it raced with.

`near: {capacity: 1000, ttl: 10s, invalidate: bus}` puts this layer in front
of any read and write path of a strategy.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from typing import Literal

from pydantic import model_validator

from lab.core import Key, Read, Versioned
from lab.core.capabilities import Capability
from lab.core.settings import Settings
from lab.core.units import Fraction, KeyCount, PositiveDuration
from lab.patterns.base import Capabilities, Layer, NextRead, NextWrite, Wiring
from lab.patterns.registry import layer

CHANNEL = "cachelab:invalidate"


class NearSpec(Settings):
    """A local cache in every app instance, in front of the shared cache."""

    capacity: KeyCount | None = 1000
    ttl: PositiveDuration = 10.0
    invalidate: Literal["ttl", "bus"] = "ttl"
    loss: Fraction = 0.0
    """Extra share of invalidations this instance never receives (on top of topology.bus.loss):
    a subscriber that was disconnected when they were published."""

    @model_validator(mode="after")
    def _loss_needs_bus(self) -> NearSpec:
        if self.loss and self.invalidate != "bus":
            raise ValueError("loss applies to invalidate: bus")
        return self


class LocalLru:
    """An exact LRU map with a key capacity and lazy TTL expiry (checked on access), like
    an in-process cache: an expired entry occupies room until it is read or evicted."""

    def __init__(self, capacity: int | None) -> None:
        self.capacity = capacity if capacity is not None else 1 << 62
        self._data: OrderedDict[Key, tuple[Versioned, float]] = OrderedDict()

    def get(self, key: Key, now: float) -> Versioned | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return entry[0]

    def set(self, key: Key, value: Versioned, ttl: float, now: float) -> None:
        self._data[key] = (value, now + ttl)
        self._data.move_to_end(key)
        if len(self._data) > self.capacity:
            self._data.popitem(last=False)  # the least recently used

    def delete(self, key: Key) -> None:
        self._data.pop(key, None)

    def __len__(self) -> int:
        return len(self._data)


@layer("near", settings=NearSpec)
class NearCache(Layer):
    """One instance's local cache, subscribed to invalidations when asked to: a read is
    answered locally when it can be; a write drops the local copy and tells the others."""

    summary = "a local cache in every app instance, invalidated by its TTL or pub/sub"
    settings: NearSpec

    def __init__(self, wiring: Wiring, settings: NearSpec) -> None:
        super().__init__(wiring, settings)
        self.rt = wiring.rt
        self.metrics = wiring.metrics
        self.store = LocalLru(settings.capacity)
        self.bus = wiring.bus if settings.invalidate == "bus" else None
        self._random = random.Random(wiring.seed)
        if self.bus is not None:
            self.bus.subscribe(CHANNEL, self._on_message)

    def needs(self) -> Capabilities:
        return frozenset({Capability.PUBSUB}) if self.settings.invalidate == "bus" else frozenset()

    async def read(self, key: Key, next: NextRead) -> Read:
        local = self.store.get(key, self.rt.now())
        if local is not None:
            self.metrics.count("near_hits")
            return Read(local, "near")
        got = await next(key)
        self.store.set(key, got.value, self.settings.ttl, self.rt.now())
        return got

    async def write(self, key: Key, next: NextWrite) -> Versioned:
        stored = await next(key)
        self.store.delete(key)
        if self.bus is not None:
            await self.bus.publish(CHANNEL, key)
        return stored

    def _on_message(self, key: Key) -> None:
        if self.settings.loss and self._random.random() < self.settings.loss:
            return  # this subscriber was disconnected when it was published
        self.store.delete(key)
