"""Write-update: commit to the origin, then set the new value in the cache.

Saves the reload after a write, but two concurrent writers can leave the cache
at the older version (their sets land in the other order than their commits).
"""

from __future__ import annotations

from lab.core import Key, Versioned
from lab.patterns.base import WritePath
from lab.patterns.registry import write_path


@write_path("update")
class WriteUpdate(WritePath):
    """Commit to the origin, then set the committed value in the cache with the TTL."""

    summary = "origin, then set the new value in the cache"

    async def write(self, key: Key) -> Versioned:
        stored = await self.origin.write(key)
        ttl = self.next_ttl()
        await self.cache.set(key, self.with_expiry(stored, ttl), ttl=ttl)
        return stored
