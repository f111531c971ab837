"""Write-invalidate: commit to the origin, then delete the cached key.

The usual companion of cache-aside. The next read reloads the new version;
between the commit and the delete, readers may still see the old one (not
stale by the oracle: the write is not acknowledged yet).
"""

from __future__ import annotations

from typing import Any

from lab.core import Key, Versioned
from lab.patterns.base import WritePath, write_path
from lab.patterns.stampede import lease_key


@write_path("invalidate")
class WriteInvalidate(WritePath):
    """Commit to the origin, then delete the key from the cache."""

    summary = "origin, then delete the cached key"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stampede = self.spec.stampede
        self.revokes_leases = stampede is not None and stampede.kind == "lease"

    async def write(self, key: Key) -> Versioned:
        stored = await self.origin.write(key)
        await self.cache.delete(key)
        if self.revokes_leases:  # a reader still loading the old row may not fill it
            await self.cache.delete(lease_key(key))
        return stored
