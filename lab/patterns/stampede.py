"""Stampede guards: what happens when a hot key goes missing and many readers miss at once.

Each guard is cache-aside with a different miss (or near-miss) policy:
- `lock`: SET NX a lock key with an expiry; the holder reloads, the others poll
  and re-check the cache. With `recheck: false` a waiter that gets the lock
  after the first holder finished reloads again instead of reading the fresh copy.
- `xfetch`: probabilistic early expiration (Vattani et al.): a reader recomputes
  before expiry when `now - delta * beta * ln(rand()) >= expiry`, where delta is
  the measured recompute time, so usually one reader refreshes a hot key early.
- `coalesce`: single-flight inside an app instance: concurrent misses of one
  key share one origin read (one load per instance, not per cluster).
- `lease`: a miss takes a token; only its holder may fill the key, and the
  write path's invalidation revokes it (the guard watches the write path).

Each guard's settings model sits above it and is what `stampede: {<guard>: {...}}`
accepts.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from lab.core import Key, Read, Versioned
from lab.core.capabilities import Capability
from lab.core.settings import Settings
from lab.core.units import PositiveDuration
from lab.core.values import key_name
from lab.patterns.base import Capabilities, StrategySettings, Wiring, WritePath
from lab.patterns.cache_aside import CacheAside
from lab.patterns.read_through import LoadingCache
from lab.patterns.registry import stampede_guard

LOCK_TOKEN = Versioned(0, 1)


class LockGuard(Settings):
    """Distributed lock (SET NX with an expiry) around the reload of a missing key.

    `release: unconditional` deletes the lock whoever holds it now (the article's
    code); `token` stores a token of the holder's and deletes the lock only if it
    still holds that token (compare-and-delete), so a holder whose load outlived
    `expiry` cannot release the next holder's lock."""

    expiry: PositiveDuration = 1.0
    poll: PositiveDuration = 0.005
    wait: PositiveDuration = 1.0
    recheck: bool = True
    release: Literal["unconditional", "token"] = "unconditional"


@stampede_guard("lock", settings=LockGuard)
class LockedCacheAside(CacheAside):
    """Cache-aside whose reload is serialized by a distributed lock."""

    summary = "SET NX lock around the reload; waiters poll and re-check the cache"
    requires = frozenset({Capability.NX})
    settings: LockGuard

    def needs(self) -> Capabilities:
        if self.settings.release == "token":  # compare-and-delete
            return self.requires | {Capability.SET_IF_EQUAL}
        return self.requires

    async def read(self, key: Key) -> Read:
        if (hit := await self.cache.get(key)) is not None:
            return Read(hit, "cache")
        lock, rt, cache = self.settings, self.rt, self.cache
        lock_key = f"lock:{key_name(key)}"
        deadline = rt.now() + lock.wait
        token = LOCK_TOKEN if lock.release == "unconditional" else self._token()
        while True:
            if await cache.set(lock_key, token, ttl=lock.expiry, nx=True):
                try:
                    if lock.recheck and (hit := await cache.get(key)) is not None:
                        return Read(hit, "cache")
                    return await self._load(key)
                finally:
                    if token is LOCK_TOKEN:
                        await cache.delete(lock_key)
                    else:  # only if it is still ours: it may have expired and been taken
                        await cache.delete_if_equal(lock_key, token)
            await rt.sleep(lock.poll)
            if lock.recheck and (hit := await cache.get(key)) is not None:
                return Read(hit, "cache")
            if rt.now() >= deadline:  # give up waiting: load without the lock
                return await self._load(key)

    def _token(self) -> Versioned:
        """A token no other holder has (from the strategy's seeded random stream)."""
        return Versioned(self.random.getrandbits(62) + 1, 1)

    async def _load(self, key: Key) -> Read:
        row = await self.origin.read(key)
        await self.cache.set(key, row, ttl=self.next_ttl(), nx=self.fill_nx)
        return Read(row, "origin")


class XFetchGuard(Settings):
    """Probabilistic early expiration: recompute when now - delta*beta*ln(rand) >= expiry."""

    beta: Annotated[float, Field(gt=0)] = 1.0


@stampede_guard("xfetch", settings=XFetchGuard)
class XFetchCacheAside(CacheAside):
    """Cache-aside with probabilistic early recomputation (XFetch)."""

    summary = "recompute early with probability growing as expiry nears (XFetch)"
    settings: XFetchGuard

    @classmethod
    def check(cls, spec: StrategySettings) -> None:
        if spec.ttl is None:
            raise ValueError("xfetch recomputes before the TTL runs out, so it needs a ttl")

    async def read(self, key: Key) -> Read:
        hit = await self.cache.get(key)
        rt = self.rt
        if hit is not None:
            early = rt.now() - hit.delta * self.settings.beta * math.log(1.0 - self.random.random())
            if early < hit.expiry or hit.expiry == 0.0:
                return Read(hit, "cache")
        start = rt.now()
        row = await self.origin.read(key)
        done = rt.now()
        ttl = self.next_ttl()
        assert ttl is not None
        stored = Versioned(row.version, row.size, expiry=done + ttl, delta=done - start)
        # an early recompute replaces the live entry; only a fill after a miss may use NX
        await self.cache.set(key, stored, ttl=ttl, nx=self.fill_nx and hit is None)
        return Read(row, "origin")


class CoalesceGuard(Settings):
    """Single-flight: concurrent misses of one key within an app instance share one load."""


@stampede_guard("coalesce", settings=CoalesceGuard)
class CoalescedCacheAside(CacheAside):
    """Cache-aside where concurrent misses of a key in one instance share a single load
    (the single-flight of the read-through loading cache, with cache-aside's fill)."""

    summary = "single-flight: concurrent misses in one instance share one origin read"

    def __init__(self, wiring: Wiring, spec: StrategySettings) -> None:
        super().__init__(wiring, spec)
        self.layer = LoadingCache.of(self, fill_nx=self.fill_nx)

    async def read(self, key: Key) -> Read:
        return await self.layer.get(key)


def lease_key(key: Key) -> str:
    """The lease of a key, hash-tagged so it lives on the key's node (atomic checks)."""
    return f"lease:{{{key_name(key)}}}"


def stale_key(key: Key) -> str:
    """Where leases keep the last value loaded for a key (for `stale: true`)."""
    return f"stale:{{{key_name(key)}}}"


class LeaseGuard(Settings):
    """Leases (as in Facebook's memcache): a miss hands out a token, only its holder may
    fill the key, and a write revokes outstanding tokens so a slow reader cannot put
    an old value back. Others who miss meanwhile wait, or take the last known value."""

    expiry: PositiveDuration = 1.0
    poll: PositiveDuration = 0.005
    wait: PositiveDuration = 1.0
    stale: bool = False


@stampede_guard("lease", settings=LeaseGuard)
class LeasedCacheAside(CacheAside):
    """Cache-aside with leases: one token per missing key, fills only by its holder,
    and writes revoke the token, so a slow reader cannot install an old value."""

    summary = "a miss takes a lease token; only its holder fills; a write revokes it"
    requires = frozenset({Capability.NX, Capability.SET_IF_EQUAL})
    settings: LeaseGuard
    tolerates: ClassVar[tuple[str, ...]] = ("invalidate", "around")
    """Write paths that leave filling to the lease holder: invalidate revokes the lease
    (see `watch`), around never touches the cache. The others set values outside it."""

    @classmethod
    def check(cls, spec: StrategySettings) -> None:
        if spec.write not in cls.tolerates:
            raise ValueError(
                "leases are revoked by write: invalidate (or never, with write: around); "
                f"write: {spec.write} sets values outside the lease"
            )

    def watch(self, writer: WritePath) -> None:
        writer.on_invalidate(self._revoke)

    def _revoke(self, key: Key) -> Awaitable[None]:
        """A reader still loading the old row may no longer fill it."""
        return self.cache.delete(lease_key(key))

    async def read(self, key: Key) -> Read:
        if (hit := await self.cache.get(key)) is not None:
            return Read(hit, "cache")
        lease, rt, cache = self.settings, self.rt, self.cache
        token = Versioned(self.random.getrandbits(62), 1)
        deadline = rt.now() + lease.wait
        while True:
            if await cache.set(lease_key(key), token, ttl=lease.expiry, nx=True):
                row = await self.origin.read(key)
                # refused if a write revoked the lease meanwhile: the row may be old
                await cache.set_if_equal(key, row, self.next_ttl(), lease_key(key), token)
                if lease.stale:
                    await cache.set(stale_key(key), row)
                return Read(row, "origin")
            if lease.stale and (old := await cache.get(stale_key(key))) is not None:
                return Read(old, "stale")  # someone is loading: take the last known value
            await rt.sleep(lease.poll)
            if (hit := await cache.get(key)) is not None:
                return Read(hit, "cache")
            if rt.now() >= deadline:  # give up waiting: load, but do not fill
                return Read(await self.origin.read(key), "origin")
