"""Write-invalidate: commit to the origin, then delete the cached key.

The usual companion of cache-aside. The next read reloads the new version;
between the commit and the delete, readers may still see the old one (not
stale by the oracle: the write is not acknowledged yet). Read paths that
must see invalidations (a lease guard revokes the key's lease) are told
after the delete (`WritePath.on_invalidate`).
"""

from __future__ import annotations

from lab.core import Key, Versioned
from lab.patterns.base import WritePath
from lab.patterns.registry import write_path


@write_path("invalidate")
class WriteInvalidate(WritePath):
    """Commit to the origin, then delete the key from the cache."""

    summary = "origin, then delete the cached key"

    async def write(self, key: Key) -> Versioned:
        stored = await self.origin.write(key)
        await self.cache.delete(key)
        for observer in self.invalidation_observers:
            await observer(key)
        return stored
