"""Refresh-ahead: a hot entry is reloaded in the background before it expires.

A hit whose remaining TTL is inside the refresh window returns at once and
starts one background reload of that key, so readers of a hot key (almost)
never see it missing. Cold keys still miss and load like cache-aside. The
cost is origin reads for entries that might not have been read again.
"""

from __future__ import annotations

from typing import Any

from lab.core import Key, Read, Versioned
from lab.core.errors import BackendError
from lab.patterns.base import ReadPath, read_path


@read_path("refresh-ahead")
class RefreshAhead(ReadPath):
    """Cache-aside plus a background reload of hits that are close to expiring."""

    summary = "hits close to expiry trigger one background reload (refresh window)"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        assert self.base_ttl is not None  # the scenario validator guarantees it
        refresh = self.spec.refresh
        base = self.base_ttl
        self.window = refresh.seconds(base) if refresh is not None else 0.2 * base
        self._refreshing: set[Key] = set()

    async def read(self, key: Key) -> Read:
        hit = await self.cache.get(key)
        if hit is not None:
            if (
                hit.expiry - self.rt.now() < self.window
                and hit.expiry != 0.0
                and key not in self._refreshing
            ):
                self._refreshing.add(key)
                self.rt.spawn(self._refresh(key))
            return Read(hit, "cache")
        return Read(await self._fill(key, nx=self.fill_nx), "origin")

    async def _fill(self, key: Key, nx: bool) -> Versioned:
        ttl = self.ttl
        assert ttl is not None
        row = await self.origin.read(key)
        stored = Versioned(row.version, row.size, expiry=self.rt.now() + ttl)
        await self.cache.set(key, stored, ttl=ttl, nx=nx)
        return row

    async def _refresh(self, key: Key) -> None:
        try:
            await self._fill(key, nx=False)  # replacing the entry is the point
        except BackendError:
            pass  # the next hit in the window tries again
        finally:
            self._refreshing.discard(key)
