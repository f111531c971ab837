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
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import Field

from lab.core import (
    Bus,
    Cache,
    Key,
    Metrics,
    NoMetrics,
    Origin,
    Read,
    Runtime,
    SizeOf,
    Versioned,
    size_of,
)
from lab.core.capabilities import Capability
from lab.core.settings import Settings
from lab.core.units import PositiveDuration
from lab.core.versions import VersionClock

Capabilities = frozenset[Capability]
Axis = Literal["read", "write", "stampede", "layer", "client"]
"""What a registered part is: chosen by `read:`, `write:`, `stampede:`, its own block
(a layer) or always there (the client's failure behaviour)."""


class StrategySettings(Settings):
    """A strategy names its parts: `{read: cache-aside, write: invalidate, ttl: 5m}`.

    These are the settings every part shares; `strategy_model()` adds each registered
    part's settings block, so a strategy is always validated with that built model."""

    read: str = "cache-aside"
    write: str = "invalidate"
    ttl: PositiveDuration | None = None
    ttl_jitter: Annotated[float, Field(ge=0, lt=1)] = 0.0
    fill: Literal["set", "add"] = "set"

    if TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any:
            """The parts' settings blocks, added by `strategy_model()` at run time."""


@dataclass(frozen=True, slots=True)
class Registration:
    """A registered part: its name, its settings model and where those sit in a strategy."""

    axis: Axis
    name: str
    part: type[Any]
    settings: type[Settings] | None = None
    field: str | None = None
    """The strategy field holding the settings, dotted for a nested one (`stampede.lock`).
    None: the model's own fields are top-level strategy fields, shared by every part that
    declares the same model (versioned keys' `namespace`)."""

    def settings_in(self, spec: StrategySettings) -> Settings | None:
        """This part's settings in a strategy (the model's defaults where it gives none)."""
        if self.settings is None:
            return None
        if self.field is None:
            return self.settings(
                **{name: getattr(spec, name) for name in self.settings.model_fields}
            )
        block: Any = spec
        for step in self.field.split("."):
            block = getattr(block, step, None)
        return self.settings() if block is None else block


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
    value_size: int | SizeOf = 1024
    """A key's value size: a constant or `lab.workload.values.ValueSizes`."""
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
        registration = type(self).registration
        self.settings: Settings | None = (
            registration.settings_in(spec) if registration is not None else None
        )
        self.base_ttl = spec.ttl
        self._jitter = spec.ttl_jitter
        self.fill_nx = spec.fill == "add"  # fill a miss with SET NX (memcached's add)
        self.random = random.Random(wiring.seed)  # parts that draw (XFetch) stay deterministic
        self.metrics = wiring.metrics
        self.size_of = size_of(wiring.value_size)
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
