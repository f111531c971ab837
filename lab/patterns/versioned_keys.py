"""Versioned keys: invalidate a whole group of keys by bumping its namespace version.

Keys are grouped into namespaces of `namespace` consecutive ids. A read first
reads the namespace's version (one extra round trip, INCRBY 0) and then
looks up `ns<n>:v<version>:<key>`; a write commits to the origin and then
bumps the version (INCR), so every cached key of that namespace is orphaned
at once: never read again, it lingers until its TTL or eviction and takes
memory meanwhile (the run reports `orphaned_keys` and `orphaned_bytes` left
in the cache at the end). The coarser the namespace, the more a single write
throws away. If the version counter itself is evicted, it restarts at 0 and
old orphaned entries can come back: a real hazard of the pattern.
"""

from __future__ import annotations

from lab.core import Key, Read, Versioned
from lab.patterns.base import ReadPath, WritePath, read_path, write_path


def namespace_of(key: Key, size: int) -> str:
    return f"ns{int(key) // size if isinstance(key, int) else key}"


@read_path("versioned")
class VersionedRead(ReadPath):
    """Cache-aside on `ns<n>:v<version>:<key>`, the version read from the cache first."""

    summary = "read the namespace version, then cache-aside on the versioned key"
    requires = frozenset({"incr"})

    async def read(self, key: Key) -> Read:
        namespace = namespace_of(key, self.spec.namespace)
        version = await self.cache.incr(f"{namespace}:version", 0)
        versioned_key = f"{namespace}:v{version}:{key}"
        if (hit := await self.cache.get(versioned_key)) is not None:
            return Read(hit, "cache")
        row = await self.origin.read(key)
        await self.cache.set(versioned_key, row, ttl=self.ttl, nx=self.fill_nx)
        return Read(row, "origin")


@write_path("bump")
class BumpNamespace(WritePath):
    """Commit to the origin, then bump the namespace version (orphaning its keys)."""

    summary = "origin, then INCR the namespace version: all its cached keys orphaned"
    requires = frozenset({"incr"})

    async def write(self, key: Key) -> Versioned:
        stored = await self.origin.write(key)
        await self.cache.incr(f"{namespace_of(key, self.spec.namespace)}:version")
        return stored
