"""Write-around: write the origin only; cached copies age out by TTL.

The simplest write path and the stalest: a cached key stays at its old
version until its TTL expires, so the stale window is up to one TTL.
"""

from __future__ import annotations

from lab.core import Key, Versioned
from lab.patterns.base import WritePath
from lab.patterns.registry import write_path


@write_path("around")
class WriteAround(WritePath):
    """Commit to the origin; leave the cache alone."""

    summary = "origin only; TTL is the only invalidation"

    async def write(self, key: Key) -> Versioned:
        return await self.origin.write(key)
