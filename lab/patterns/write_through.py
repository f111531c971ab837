"""Write-through: the caller makes one call; the cache layer commits to the origin
and then stores the committed value in the cache.

On the wire this is the same sequence as write-update (origin, then cache
set); what differs is that the caller sees a single operation owned by the
cache layer, as in write-through caching libraries. Like write-update, two
concurrent writers can have their cache sets land in the other order than
their commits, leaving the older version cached until the next write or the
TTL: the oracle flags the stale reads that follow.
"""

from __future__ import annotations

from lab.core import Key, Versioned
from lab.patterns.base import StrategySettings, Wiring, WritePath
from lab.patterns.read_through import LoadingCache
from lab.patterns.registry import write_path


@write_path("through")
class WriteThrough(WritePath):
    """Write through the cache layer: origin commit, then cache set, as one call."""

    summary = "one call: the cache layer commits to the origin, then sets the cache"

    def __init__(self, wiring: Wiring, spec: StrategySettings) -> None:
        super().__init__(wiring, spec)
        self.layer = LoadingCache.of(self)

    async def write(self, key: Key) -> Versioned:
        return await self.layer.put(key)
