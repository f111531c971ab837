"""Which backends exist: a name, and the class implementing `lab.backend.Backend`.

Classes are imported only when a cell runs on them, so the simulator never
imports redis and a missing optional dependency only matters to its own
backend. The scenario's `backends:` field, `--backend` and `cachelab list`
all read this table: a new backend is one line here plus its package.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lab.backend import Backend

REGISTRY: dict[str, str] = {
    "sim": "lab.sim.backend:SimBackend",
    "redis": "lab.redis.backend:RedisBackend",
    "memcached": "lab.memcached.backend:MemcachedBackend",
}
"""Backend name -> "module:Class"."""


class UnknownBackend(ValueError):
    """A backend name that is not in the registry (the message lists the known ones)."""


def names() -> list[str]:
    """Every backend name, in registry order."""
    return list(REGISTRY)


def check(name: str) -> str:
    """`name` if it is a known backend; UnknownBackend (one line) otherwise."""
    if name not in REGISTRY:
        raise UnknownBackend(f"unknown backend {name!r}; known: {', '.join(REGISTRY)}")
    return name


def load(name: str) -> type[Backend]:
    """The class of backend `name` (imports its package)."""
    module, _, attribute = REGISTRY[check(name)].partition(":")
    backend: type[Backend] = getattr(import_module(module), attribute)
    return backend


def create(name: str, **options: Any) -> Backend:
    """A new instance of backend `name` (one per cell); `options` go to its constructor."""
    return load(name)(**options)
