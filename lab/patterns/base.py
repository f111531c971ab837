"""What every strategy part is built from: the wiring it gets and the classes it subclasses.

A part subclasses `ReadPath`, `WritePath` or `Layer` and registers itself, with
its settings model, by a decorator in its own module (`lab/patterns/registry.py`);
the scenario's strategy model is assembled from those registrations, so adding
a part touches one file.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from lab.core import Bus, Cache, Key, Metrics, NoMetrics, Origin, Read, Runtime, Versioned
from lab.core.capabilities import Capability
from lab.core.versions import VersionClock

if TYPE_CHECKING:
    from lab.core.settings import Settings
    from lab.patterns.registry import Registration, StrategySettings

Capabilities = frozenset[Capability]


@dataclass(frozen=True, slots=True)
class Wiring:
    """What the parts of one app instance's strategy talk to.

    `cache` is the cache as the parts use it: through the client's failure
    behaviour (`resilience.py`) when the run has one. `raw_cache` is the same
    cache without it, for a part that handles cache failures itself
    (write-behind); it defaults to `cache`."""

    cache: Cache
    origin: Origin
    rt: Runtime
    seed: int = 0
    """Seeds the parts' own random draws (one value per app instance)."""
    raw_cache: Cache | None = None
    metrics: Metrics = field(default_factory=NoMetrics)
    value_size: int = 1024
    versions: VersionClock = field(default_factory=VersionClock)
    """Shared by all app instances of a run: write-behind's versions."""
    bus: Bus | None = None


class Part:
    """A read or write path: the wiring, the strategy's common settings and its own."""

    requires: ClassVar[Capabilities] = frozenset()
    summary: ClassVar[str] = ""
    registration: ClassVar[Registration | None] = None
    """Set by the registering decorator: the part's name and where its settings sit."""

    def __init__(self, wiring: Wiring, spec: StrategySettings) -> None:
        self.cache = wiring.cache
        self.raw_cache = wiring.raw_cache if wiring.raw_cache is not None else wiring.cache
        self.origin = wiring.origin
        self.rt = wiring.rt
        self.spec = spec
        registration = type(self).registration
        self.settings: Settings | None = (
            registration.settings_in(spec) if registration is not None else None
        )
        self.base_ttl = spec.ttl
        self._jitter = spec.ttl_jitter
        self.fill_nx = spec.fill == "add"  # fill a miss with SET NX (memcached's add)
        self.random = random.Random(wiring.seed)  # parts that draw (XFetch) stay deterministic
        self.metrics = wiring.metrics
        self.value_size = wiring.value_size
        self.versions = wiring.versions

    @classmethod
    def check(cls, spec: StrategySettings) -> None:
        """Raise ValueError (one line naming the fix) if the strategy's other parts do not
        fit this one: the rules between parts live on the parts."""

    def next_ttl(self) -> float | None:
        """The TTL for one cache set: the strategy's TTL, spread by `ttl_jitter` (a fraction,
        uniform either side) so keys filled together do not all expire together. With a
        jitter, each call draws one number from the part's random stream."""
        base = self.base_ttl
        if base is None or not self._jitter:
            return base
        return base * (1.0 + self._jitter * (2.0 * self.random.random() - 1.0))

    def with_expiry(self, value: Versioned, ttl: float | None) -> Versioned:
        """The value as a cache entry set now with `ttl` (see `expiring`)."""
        return expiring(value, ttl, self.rt.now())

    async def close(self) -> None:
        """Finish background work at the end of a run (write-behind drains its queue)."""

    def needs(self) -> Capabilities:
        """Backend capabilities this part needs (its class's `requires`, unless it depends
        on its settings)."""
        return type(self).requires


def expiring(value: Versioned, ttl: float | None, now: float) -> Versioned:
    """The value as a cache entry set at `now` with `ttl`: it carries its expiry, so that
    refresh-ahead and XFetch can act on entries a write path put in the cache."""
    if ttl is None:
        return value
    return Versioned(value.version, value.size, expiry=now + ttl)


Invalidated = Callable[[Key], Awaitable[Any]]
"""Told the key a write path has just invalidated (see `WritePath.on_invalidate`)."""


class ReadPath(Part):
    """How a read is served: returns the value and where it came from."""

    async def read(self, key: Key) -> Read:
        raise NotImplementedError

    def watch(self, writer: WritePath) -> None:
        """Subscribe to what the strategy's write path does (leases revoke on invalidation)."""


class WritePath(Part):
    """How a write is applied: returns the version acknowledged to the client."""

    def __init__(self, wiring: Wiring, spec: StrategySettings) -> None:
        super().__init__(wiring, spec)
        self.invalidation_observers: list[Invalidated] = []
        """Awaited with the key, in order, right after this path invalidates a cached key."""

    def on_invalidate(self, observer: Invalidated) -> None:
        """Await `observer(key)` each time this path invalidates a cached key, after the
        invalidation: a read path that must see writes (leases) registers here."""
        self.invalidation_observers.append(observer)

    async def write(self, key: Key) -> Versioned:
        raise NotImplementedError


NextRead = Callable[[Key], Awaitable[Read]]
NextWrite = Callable[[Key], Awaitable[Versioned]]


class Layer:
    """A part in front of the read and write paths (a near cache): it sees each read and
    write first and passes it on by calling `next`, or answers it itself."""

    requires: ClassVar[Capabilities] = frozenset()
    summary: ClassVar[str] = ""
    registration: ClassVar[Registration | None] = None

    def __init__(self, wiring: Wiring, settings: Any) -> None:
        self.settings = settings

    async def read(self, key: Key, next: NextRead) -> Read:
        return await next(key)

    async def write(self, key: Key, next: NextWrite) -> Versioned:
        return await next(key)

    def needs(self) -> Capabilities:
        return type(self).requires

    async def close(self) -> None:
        """Finish background work at the end of a run."""
