"""Write-behind (write-back): the cache takes the write and acknowledges at once;
a flusher drains the writes to the origin later, in batches.

Writes are fast and repeated writes to a key coalesce into one origin write,
but until a write is flushed the cache holds the only copy: if the cache
loses it (eviction, a crash) the acknowledged write is lost, and a read that
misses meanwhile loads the older version from the origin. A write's version
is chosen when the cache accepts it (from the run's VersionClock), and the
origin keeps the newest version it is given, so late or reordered flushes
never roll it back.

Reported: `flush_lag` (acknowledgement to origin commit, p50/p99/max),
`write_backlog_max` (pending writes in one instance), `flushed_writes`,
`coalesced_writes`.
"""

from __future__ import annotations

from typing import Any

from lab.core import Key, Versioned
from lab.core.errors import BackendError
from lab.patterns.base import WritePath, write_path
from lab.scenario import FlushSpec


@write_path("behind")
class WriteBehind(WritePath):
    """Set the cache and acknowledge; flush to the origin by interval or batch size."""

    summary = "cache takes the write and acks; a flusher batches writes to the origin"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.flush = self.spec.flush or FlushSpec()
        self._pending: dict[Key, tuple[Versioned, float]] = {}  # newest write per key
        self._flusher_started = False
        self._urgent = False
        self._closed = False
        self._in_flight = 0

    async def write(self, key: Key) -> Versioned:
        value = Versioned(self.versions.next(key), self.value_size)
        version = value.version
        await self.cache.set(key, value, ttl=self.ttl)
        acked = self.rt.now()
        earlier = self._pending.get(key)
        if earlier is None or earlier[0].version < version:
            if earlier is not None:
                self.metrics.count("coalesced_writes")
            self._pending[key] = (value, acked)
        self.metrics.peak("write_backlog", len(self._pending))
        if not self._flusher_started:
            self._flusher_started = True
            self.rt.spawn(self._flush_every_interval())
        if len(self._pending) >= self.flush.batch and not self._urgent:
            self._urgent = True
            self.rt.spawn(self._flush_batch_now())
        return value

    async def _flush_every_interval(self) -> None:
        while not self._closed:
            await self.rt.sleep(self.flush.interval)
            while self._pending and not self._closed:
                await self._flush_one_batch()

    async def _flush_batch_now(self) -> None:
        try:
            await self._flush_one_batch()
        finally:
            self._urgent = False

    async def _flush_one_batch(self) -> None:
        """Write up to `batch` pending keys to the origin, oldest first, concurrently
        (as an async driver pipelines them; the origin's connection limit still applies)."""
        keys = list(self._pending)[: self.flush.batch]
        batch = [(key, *self._pending.pop(key)) for key in keys]
        done = self.rt.queue()
        self._in_flight += len(batch)
        for item in batch:
            self.rt.spawn(self._flush_one(item, done))
        for _ in batch:
            await done.get()
        self._in_flight -= len(batch)

    async def _flush_one(self, item: tuple[Key, Versioned, float], done: Any) -> None:
        key, value, acked = item
        try:
            await self.origin.write(key, value)
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
