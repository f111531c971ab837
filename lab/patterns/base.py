"""Base classes and self-registration for strategy parts.

A part registers itself by name with a decorator in its own module; there is
no central list to edit. Each part declares the backend capabilities it
`requires`, so a cell whose needs a backend cannot meet is skipped with a
reason rather than silently dropped.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from lab.core import Cache, Key, Metrics, NoMetrics, Origin, Read, Runtime, Versioned
from lab.core.versions import VersionClock

if TYPE_CHECKING:
    from lab.scenario import StrategySpec


class Part:
    """Common wiring: the cache, the origin, the runtime and the strategy's settings."""

    requires: ClassVar[frozenset[str]] = frozenset()
    summary: ClassVar[str] = ""

    def __init__(
        self,
        cache: Cache,
        origin: Origin,
        rt: Runtime,
        spec: StrategySpec,
        seed: int = 0,
        *,
        metrics: Metrics | None = None,
        value_size: int = 1024,
        versions: VersionClock | None = None,
    ) -> None:
        self.cache = cache
        self.direct_cache: Cache = getattr(cache, "_cache", cache)  # without client fallbacks
        self.origin = origin
        self.rt = rt
        self.spec = spec
        self.base_ttl = spec.ttl
        self._jitter = spec.ttl_jitter
        self.fill_nx = spec.fill == "add"  # fill a miss with SET NX (memcached's add)
        self.random = random.Random(seed)  # parts that draw (XFetch) stay deterministic
        self.metrics: Metrics = metrics if metrics is not None else NoMetrics()
        self.value_size = value_size
        self.versions = versions if versions is not None else VersionClock()

    @property
    def ttl(self) -> float | None:
        """The TTL for one cache set: the strategy's TTL, spread by `ttl_jitter` (a fraction,
        uniform either side) so keys filled together do not all expire together."""
        base = self.base_ttl
        if base is None or not self._jitter:
            return base
        return base * (1.0 + self._jitter * (2.0 * self.random.random() - 1.0))

    def with_expiry(self, value: Versioned, ttl: float | None) -> Versioned:
        """The value as a cache entry set now with `ttl`: it carries its expiry, so that
        refresh-ahead and XFetch can act on entries a write path put in the cache."""
        if ttl is None:
            return value
        return Versioned(value.version, value.size, expiry=self.rt.now() + ttl)

    async def close(self) -> None:
        """Finish background work at the end of a run (write-behind drains its queue)."""

    def needs(self) -> frozenset[str]:
        """Backend capabilities this part needs (its class's `requires`, unless composed)."""
        return type(self).requires


class ReadPath(Part):
    """How a read is served: returns the value and whether it was a cache hit."""

    async def read(self, key: Key) -> Read:
        raise NotImplementedError


class WritePath(Part):
    """How a write is applied: returns the version acknowledged to the client."""

    async def write(self, key: Key) -> Versioned:
        raise NotImplementedError


READ_PATHS: dict[str, type[ReadPath]] = {}
WRITE_PATHS: dict[str, type[WritePath]] = {}
STAMPEDE_GUARDS: dict[str, type[ReadPath]] = {}

P = TypeVar("P", bound=type[Part])


def _registrar(registry: dict[str, Any], kind: str) -> Callable[[str], Callable[[P], P]]:
    """A class decorator factory that registers parts of one kind by name."""

    def by_name(name: str) -> Callable[[P], P]:
        def register(cls: P) -> P:
            if name in registry:
                raise ValueError(f"{kind} {name!r} registered twice")
            registry[name] = cls
            return cls

        return register

    return by_name


read_path = _registrar(READ_PATHS, "read path")
"""Class decorator: register a read path under a name (`@read_path("cache-aside")`)."""
write_path = _registrar(WRITE_PATHS, "write path")
"""Class decorator: register a write path under a name."""
stampede_guard = _registrar(STAMPEDE_GUARDS, "stampede guard")
"""Class decorator: register a stampede guard (a guarded cache-aside read path)."""
