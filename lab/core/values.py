"""The values that travel between origin, caches and clients.

Every stored value carries the version the origin (or, for write-behind, the
cache) gave it, so the oracle can tell a stale read from a fresh one without
comparing payloads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

Key = int | str
"""Keys are small ints in the harness (fast to hash); backends may render them as strings."""


def key_name(key: Key) -> str:
    """The string a key is stored and hashed under on every backend."""
    return f"key:{key}" if isinstance(key, int) else key


SizeOf = Callable[[Key], int]
"""A key's value size in bytes (`lab/workload/values.py`: fixed per key for a seed)."""


def size_of(value_size: int | SizeOf) -> SizeOf:
    """`value_size` as a function of the key (a constant size for every key)."""
    if callable(value_size):
        return value_size
    return lambda key: value_size


Source = Literal["cache", "origin", "coalesced", "near", "stale"]
"""Where a read's value came from; only `cache` counts as a hit."""


class Versioned:
    """A value as stored: its per-key version and its size in bytes.

    `expiry` (absolute time the cached copy expires, 0 if unknown) and `delta`
    (seconds its recomputation took) travel with a cached value for the parts
    that need them (XFetch, refresh-ahead), as such libraries store them in the
    cache entry.
    """

    __slots__ = ("delta", "expiry", "size", "version")

    def __init__(self, version: int, size: int, expiry: float = 0.0, delta: float = 0.0) -> None:
        self.version = version
        self.size = size
        self.expiry = expiry
        self.delta = delta

    def __repr__(self) -> str:
        return f"Versioned(v{self.version}, {self.size}B)"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Versioned)
            and other.version == self.version
            and other.size == self.size
        )

    def __hash__(self) -> int:
        return hash((self.version, self.size))


class Read:
    """What a read path returns: the value and where it came from (`cache` = a hit)."""

    __slots__ = ("source", "value")

    def __init__(self, value: Versioned, source: Source) -> None:
        self.value = value
        self.source = source

    def __repr__(self) -> str:
        return f"Read({self.value!r}, {self.source})"
