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
"""

from __future__ import annotations

import math
from typing import Any

from lab.core import Key, Read, Versioned
from lab.patterns.base import stampede_guard
from lab.patterns.cache_aside import CacheAside
from lab.patterns.read_through import LoadingCache
from lab.sharding import key_name

LOCK_TOKEN = Versioned(0, 1)


@stampede_guard("lock")
class LockedCacheAside(CacheAside):
    """Cache-aside whose reload is serialized by a distributed lock."""

    summary = "SET NX lock around the reload; waiters poll and re-check the cache"
    requires = frozenset({"nx"})

    def needs(self) -> frozenset[str]:
        guard = self.spec.stampede
        token = guard is not None and guard.lock is not None and guard.lock.release == "token"
        return self.requires | {"set_if_equal"} if token else self.requires  # compare-and-delete

    async def read(self, key: Key) -> Read:
        if (hit := await self.cache.get(key)) is not None:
            return Read(hit, "cache")
        guard = self.spec.stampede
        assert guard is not None and guard.lock is not None
        lock, rt, cache = guard.lock, self.rt, self.cache
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
        await self.cache.set(key, row, ttl=self.ttl, nx=self.fill_nx)
        return Read(row, "origin")


@stampede_guard("xfetch")
class XFetchCacheAside(CacheAside):
    """Cache-aside with probabilistic early recomputation (XFetch)."""

    summary = "recompute early with probability growing as expiry nears (XFetch)"

    async def read(self, key: Key) -> Read:
        guard = self.spec.stampede
        assert guard is not None and guard.xfetch is not None
        hit = await self.cache.get(key)
        rt = self.rt
        if hit is not None:
            early = rt.now() - hit.delta * guard.xfetch.beta * math.log(1.0 - self.random.random())
            if early < hit.expiry or hit.expiry == 0.0:
                return Read(hit, "cache")
        start = rt.now()
        row = await self.origin.read(key)
        done = rt.now()
        ttl = self.ttl
        assert ttl is not None
        stored = Versioned(row.version, row.size, expiry=done + ttl, delta=done - start)
        # an early recompute replaces the live entry; only a fill after a miss may use NX
        await self.cache.set(key, stored, ttl=ttl, nx=self.fill_nx and hit is None)
        return Read(row, "origin")


@stampede_guard("coalesce")
class CoalescedCacheAside(CacheAside):
    """Cache-aside where concurrent misses of a key in one instance share a single load
    (the single-flight of the read-through loading cache, with cache-aside's fill)."""

    summary = "single-flight: concurrent misses in one instance share one origin read"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.layer = LoadingCache(
            self.cache, self.origin, self.rt, lambda: self.ttl, fill_nx=self.fill_nx
        )

    async def read(self, key: Key) -> Read:
        return await self.layer.get(key)


def lease_key(key: Key) -> str:
    """The lease of a key, hash-tagged so it lives on the key's node (atomic checks)."""
    return f"lease:{{{key_name(key)}}}"


def stale_key(key: Key) -> str:
    """Where leases keep the last value loaded for a key (for `stale: true`)."""
    return f"stale:{{{key_name(key)}}}"


@stampede_guard("lease")
class LeasedCacheAside(CacheAside):
    """Cache-aside with leases: one token per missing key, fills only by its holder,
    and writes revoke the token, so a slow reader cannot install an old value."""

    summary = "a miss takes a lease token; only its holder fills; a write revokes it"
    requires = frozenset({"nx", "set_if_equal"})

    async def read(self, key: Key) -> Read:
        if (hit := await self.cache.get(key)) is not None:
            return Read(hit, "cache")
        guard = self.spec.stampede
        assert guard is not None and guard.lease is not None
        lease, rt, cache = guard.lease, self.rt, self.cache
        token = Versioned(self.random.getrandbits(62), 1)
        deadline = rt.now() + lease.wait
        while True:
            if await cache.set(lease_key(key), token, ttl=lease.expiry, nx=True):
                row = await self.origin.read(key)
                # refused if a write revoked the lease meanwhile: the row may be old
                await cache.set_if_equal(key, row, self.ttl, lease_key(key), token)
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
