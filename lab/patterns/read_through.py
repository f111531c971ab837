"""Read-through: the application asks the cache layer; the layer loads on a miss.

The application never reads the origin itself: it calls `layer.get(key)` and
the layer (a loading cache, as in Caffeine, Guava or a provider-backed
distributed cache) looks the key up, and on a miss runs the loader once per
key at a time in this app instance (concurrent callers wait for that load),
fills the cache and returns. Here the layer lives in the app instance and
talks to the shared cache and the origin over the same network as
cache-aside, so what differs from cache-aside is who owns the loading logic
and that loads are coalesced per instance by construction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lab.core import Cache, Key, Origin, Queue, Read, Runtime, Versioned
from lab.patterns.base import Part, ReadPath, StrategySettings, Wiring, expiring
from lab.patterns.registry import read_path


class LoadingCache:
    """A cache layer that loads missing keys from the origin, one load per key at a time."""

    def __init__(
        self,
        cache: Cache,
        origin: Origin,
        rt: Runtime,
        ttl: Callable[[], float | None],
        fill_nx: bool = True,
    ) -> None:
        self.cache = cache
        self.origin = origin
        self.rt = rt
        self.ttl = ttl
        self.fill_nx = fill_nx
        self._loading: dict[Key, list[Queue[Any]]] = {}

    async def get(self, key: Key) -> Read:
        if (hit := await self.cache.get(key)) is not None:
            return Read(hit, "cache")
        waiters = self._loading.get(key)
        if waiters is not None:
            inbox: Queue[Any] = self.rt.queue()
            waiters.append(inbox)
            outcome = await inbox.get()
            if isinstance(outcome, BaseException):
                raise outcome
            return Read(outcome, "coalesced")
        self._loading[key] = []
        try:
            row = await self.origin.read(key)
            await self.cache.set(key, row, ttl=self.ttl(), nx=self.fill_nx)
        except BaseException as exc:
            for inbox in self._loading.pop(key):
                inbox.put(exc)
            raise
        for inbox in self._loading.pop(key):
            inbox.put(row)
        return Read(row, "origin")

    async def put(self, key: Key) -> Versioned:
        """Write-through: commit to the origin, then store the committed value."""
        stored = await self.origin.write(key)
        ttl = self.ttl()
        await self.cache.set(key, expiring(stored, ttl, self.rt.now()), ttl=ttl)
        return stored

    @classmethod
    def of(cls, part: Part, fill_nx: bool = True) -> LoadingCache:
        """The loading cache on a part's cache and origin, with the part's TTLs."""
        return cls(part.cache, part.origin, part.rt, part.next_ttl, fill_nx)


@read_path("read-through")
class ReadThrough(ReadPath):
    """Ask the loading cache; it loads from the origin on a miss (coalesced per instance)."""

    summary = "the cache layer loads on a miss; the app never reads the origin"

    def __init__(self, wiring: Wiring, spec: StrategySettings) -> None:
        super().__init__(wiring, spec)
        self.layer = LoadingCache.of(self)

    async def read(self, key: Key) -> Read:
        return await self.layer.get(key)
