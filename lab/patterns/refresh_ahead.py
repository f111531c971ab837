"""Refresh-ahead: a hot entry is reloaded in the background before it expires.

A hit whose remaining TTL is inside the refresh window returns at once and
starts one background reload of that key, so readers of a hot key (almost)
never see it missing. Cold keys still miss and load like cache-aside. The
cost is origin reads for entries that might not have been read again.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from lab.core import Key, Read, Versioned
from lab.core.errors import BackendError
from lab.core.settings import Settings
from lab.core.units import parse_duration
from lab.patterns.base import ReadPath, StrategySettings, Wiring
from lab.patterns.registry import read_path


class RefreshSpec(Settings):
    """Refresh-ahead: a hit with less than `window` of its TTL left is refreshed in the
    background (a fraction of the TTL, or a duration)."""

    window: Annotated[float, Field(gt=0)] | str = 0.2

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, value: object) -> float | str:
        if isinstance(value, str):
            parse_duration(value)
        return value  # type: ignore[return-value]

    def seconds(self, ttl: float) -> float:
        """The refresh window in seconds for a given TTL."""
        if isinstance(self.window, str):
            return parse_duration(self.window)
        return self.window * ttl if self.window <= 1 else self.window


@read_path("refresh-ahead", settings=RefreshSpec, field="refresh")
class RefreshAhead(ReadPath):
    """Cache-aside plus a background reload of hits that are close to expiring."""

    summary = "hits close to expiry trigger one background reload (refresh window)"
    settings: RefreshSpec

    def __init__(self, wiring: Wiring, spec: StrategySettings) -> None:
        super().__init__(wiring, spec)
        assert self.base_ttl is not None  # `check` guarantees it
        self.window = self.settings.seconds(self.base_ttl)
        self._refreshing: set[Key] = set()

    @classmethod
    def check(cls, spec: StrategySettings) -> None:
        if spec.ttl is None:
            raise ValueError("refresh-ahead refreshes before the TTL runs out, so it needs a ttl")

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
        ttl = self.next_ttl()
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
