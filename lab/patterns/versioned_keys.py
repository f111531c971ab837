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

from typing import Annotated

from pydantic import Field

from lab.core import Key, Read, Versioned
from lab.core.capabilities import Capability
from lab.core.settings import Settings
from lab.patterns.base import ReadPath, StrategySettings, WritePath
from lab.patterns.registry import read_path, write_path


class Namespace(Settings):
    """Shared by both parts, a top-level strategy field: `namespace: 100`."""

    namespace: Annotated[int, Field(ge=1)] = 100
    """How many consecutive key ids share one namespace version."""


def namespace_of(key: Key, size: int) -> str:
    return f"ns{int(key) // size if isinstance(key, int) else key}"


def _both_parts(spec: StrategySettings) -> None:
    if (spec.read == "versioned") != (spec.write == "bump"):
        raise ValueError("versioned keys need both parts: read: versioned with write: bump")


@read_path("versioned", settings=Namespace)
class VersionedRead(ReadPath):
    """Cache-aside on `ns<n>:v<version>:<key>`, the version read from the cache first."""

    summary = "read the namespace version, then cache-aside on the versioned key"
    requires = frozenset({Capability.INCR})
    settings: Namespace

    @classmethod
    def check(cls, spec: StrategySettings) -> None:
        _both_parts(spec)

    async def read(self, key: Key) -> Read:
        namespace = namespace_of(key, self.settings.namespace)
        version = await self.cache.incr(f"{namespace}:version", 0)
        versioned_key = f"{namespace}:v{version}:{key}"
        if (hit := await self.cache.get(versioned_key)) is not None:
            return Read(hit, "cache")
        row = await self.origin.read(key)
        await self.cache.set(versioned_key, row, ttl=self.next_ttl(), nx=self.fill_nx)
        return Read(row, "origin")


@write_path("bump", settings=Namespace)
class BumpNamespace(WritePath):
    """Commit to the origin, then bump the namespace version (orphaning its keys)."""

    summary = "origin, then INCR the namespace version: all its cached keys orphaned"
    requires = frozenset({Capability.INCR})
    settings: Namespace

    @classmethod
    def check(cls, spec: StrategySettings) -> None:
        _both_parts(spec)

    async def write(self, key: Key) -> Versioned:
        stored = await self.origin.write(key)
        await self.cache.incr(f"{namespace_of(key, self.settings.namespace)}:version")
        return stored
