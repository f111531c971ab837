"""Write-behind (write-back): the cache takes the write and acknowledges at once;
a flusher drains the writes to the origin later, in batches.

Writes are fast and repeated writes to a key coalesce into one origin write,
but until a write is flushed the cache holds the only copy: if the cache
loses it (eviction, a crash) the acknowledged write is lost, and a read that
misses meanwhile loads the older version from the origin. A write's version
is chosen when the cache accepts it (from the run's VersionClock), and the
origin keeps the newest version it is given, so late or reordered flushes
never roll it back.

The app instance only tracks which keys are dirty; the values live in the
cache, and the flusher reads them back (as write-behind caches that keep the
queue in the cache do). A dirty key the cache lost before its flush (a
crash, an eviction) is dropped: an acknowledged write that the origin never
gets, which the oracle counts in `lost_writes`.

Reported: `flush_lag` (from a key's first unflushed acknowledged write to the
origin commit that covers it, p50/p99/max: how long the cache alone held it),
`write_backlog_max` (pending writes in one instance), `flushed_writes`,
`coalesced_writes`, `dropped_writes`.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from lab.core import Key, Versioned
from lab.core.errors import BackendError, CacheUnavailable
from lab.core.settings import Settings
from lab.core.units import PositiveDuration
from lab.patterns.base import StrategySettings, Wiring, WritePath
from lab.patterns.registry import write_path


class FlushSpec(Settings):
    """Write-behind flushing: every `interval`, or as soon as `batch` writes are pending."""

    interval: PositiveDuration = 1.0
    batch: Annotated[int, Field(ge=1)] = 100


@write_path("behind", settings=FlushSpec, field="flush")
class WriteBehind(WritePath):
    """Set the cache and acknowledge; flush to the origin by interval or batch size."""

    summary = "cache takes the write and acks; a flusher batches writes to the origin"
    settings: FlushSpec

    def __init__(self, wiring: Wiring, spec: StrategySettings) -> None:
        super().__init__(wiring, spec)
        self.fallback: bool = spec.client.fallback
        """The client falls back to the origin when the cache fails (`client.fallback`)."""
        self._pending: dict[Key, tuple[Versioned, float]] = {}  # newest write per key
        self._flusher_started = False
        self._urgent = False
        self._closed = False
        self._in_flight = 0

    async def write(self, key: Key) -> Versioned:
        value = Versioned(self.versions.next(key), self.size_of(key))
        version = value.version
        ttl = self.next_ttl()
        try:
            await self.raw_cache.set(key, self.with_expiry(value, ttl), ttl=ttl)
        except CacheUnavailable:
            if not self.fallback:
                raise
            # the cache cannot take it: write it through to the origin instead
            self.metrics.count("degraded")
            return await self.origin.write(key, value)
        acked = self.rt.now()
        earlier = self._pending.get(key)
        if earlier is None:
            self._pending[key] = (value, acked)
        elif earlier[0].version < version:
            # coalesce; the key has been dirty since its first unflushed write
            self.metrics.count("coalesced_writes")
            self._pending[key] = (value, earlier[1])
        self.metrics.peak("write_backlog", len(self._pending))
        if not self._flusher_started:
            self._flusher_started = True
            self.rt.spawn(self._flush_every_interval())
        if len(self._pending) >= self.settings.batch and not self._urgent:
            self._urgent = True
            self.rt.spawn(self._flush_batch_now())
        return value

    async def _flush_every_interval(self) -> None:
        """Each tick flushes what is pending at that moment (in batches), no more: writes
        that arrive meanwhile wait for the next tick or a full batch."""
        while not self._closed:
            await self.rt.sleep(self.settings.interval)
            batches = -(-len(self._pending) // self.settings.batch)
            for _ in range(batches):
                if self._closed:
                    break
                await self._flush_one_batch()

    async def _flush_batch_now(self) -> None:
        try:
            await self._flush_one_batch()
        finally:
            self._urgent = False

    async def _flush_one_batch(self) -> None:
        """Write up to `batch` pending keys to the origin, oldest first, concurrently
        (as an async driver pipelines them; the origin's connection limit still applies)."""
        keys = list(self._pending)[: self.settings.batch]
        batch = [(key, *self._pending.pop(key)) for key in keys]
        done = self.rt.queue()
        self._in_flight += len(batch)
        for item in batch:
            self.rt.spawn(self._flush_one(item, done))
        for _ in batch:
            await done.get()
        self._in_flight -= len(batch)

    async def _flush_one(self, item: tuple[Key, Versioned, float], done: Any) -> None:
        """Read the dirty value back from the cache and write it to the origin: the cache,
        not the app, holds the write, so if the cache lost it (a crash, an eviction) it
        is gone, and the oracle will count it as a lost write."""
        key, value, acked = item
        try:
            held = await self.raw_cache.get(key)
            if held is None or held.version < value.version:
                self.metrics.count("dropped_writes")  # the cache lost it before the flush
                return
            await self.origin.write(key, held)
        except BackendError:
            if key not in self._pending:  # not superseded meanwhile: try again next flush
                self._pending[key] = (value, acked)
        else:
            self.metrics.observe("flush_lag", self.rt.now() - acked)
            self.metrics.count("flushed_writes")
        finally:
            done.put(None)

    async def close(self) -> None:
        """Drain everything still pending (a graceful shutdown)."""
        self._closed = True
        while self._in_flight:  # batches the flushers already took
            await self.rt.sleep(0.001)
        while self._pending:
            before = len(self._pending)
            await self._flush_one_batch()
            if len(self._pending) >= before:
                return  # the origin refuses: what is left is lost (the oracle counts it)
