"""Cache-aside (lazy loading): the application checks the cache, loads from the
origin on a miss and fills the cache itself.

Cheap and robust, but a miss costs a cache round trip, an origin read and a
cache write, and a slow loader can put back a value a concurrent writer has
already replaced (the stale-set race). With `fill: add` the fill is a SET NX
(memcached's `add`): it never overwrites a value a writer set meanwhile
(write-update, write-behind), though it cannot undo a delete (invalidate).
"""

from __future__ import annotations

from lab.core import Key, Read
from lab.patterns.base import ReadPath
from lab.patterns.registry import read_path


@read_path("cache-aside")
class CacheAside(ReadPath):
    """Read the cache; on a miss read the origin and set the key with the TTL."""

    summary = "check the cache; on a miss load from the origin and set with TTL"

    async def read(self, key: Key) -> Read:
        if (hit := await self.cache.get(key)) is not None:
            return Read(hit, "cache")
        row = await self.origin.read(key)
        await self.cache.set(key, row, ttl=self.next_ttl(), nx=self.fill_nx)
        return Read(row, "origin")
