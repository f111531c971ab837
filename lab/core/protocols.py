"""The small protocols every backend implements and every strategy uses.

Kept deliberately narrow (YCSB-style): a backend that implements these and
passes the contract tests can run every strategy the lab has. Methods return
awaitables rather than being declared `async def`, so that the simulator can
implement them as lean generator-based awaitables and real backends as
ordinary coroutines.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from lab.core.values import Key, Versioned


class Cache(Protocol):
    """A shared (distributed) cache as an application instance sees it."""

    def get(self, key: Key) -> Awaitable[Versioned | None]:
        """The stored value, or None on a miss (absent, expired or evicted)."""
        ...

    def set(
        self, key: Key, value: Versioned, ttl: float | None = None, nx: bool = False
    ) -> Awaitable[bool]:
        """Store `value` with an optional TTL; with `nx`, only if absent. True if stored."""
        ...

    def delete(self, key: Key) -> Awaitable[None]:
        """Remove the key if present."""
        ...

    def set_if_equal(
        self, key: Key, value: Versioned, ttl: float | None, check: Key, expected: Versioned
    ) -> Awaitable[bool]:
        """Atomically: if `check` holds `expected`, set `key` and delete `check` (a Lua
        script on Redis). Leases use it so only a token's holder fills a key."""
        ...

    def delete_if_equal(self, key: Key, expected: Versioned) -> Awaitable[bool]:
        """Atomically delete `key` if it holds `expected` (a Lua script on Redis): the
        safe release of a lock only its holder may release. True if deleted."""
        ...

    def incr(self, key: Key, amount: int = 1) -> Awaitable[int]:
        """Atomically add `amount` to a counter key (absent counts as 0) and return the
        result; `amount=0` reads it (Redis INCRBY)."""
        ...


class Origin(Protocol):
    """The source of truth (the database)."""

    def read(self, key: Key) -> Awaitable[Versioned]:
        """The committed value (keys never written have version 0)."""
        ...

    def write(self, key: Key, value: Versioned | None = None) -> Awaitable[Versioned]:
        """Commit a new version of `key` and return it (versions count up per key).

        With `value` (write-behind, whose cache chose the version), store it
        unless the origin already holds a newer version, and return what it holds.
        """
        ...


class Bus(Protocol):
    """Pub/sub between app instances, at most once (Redis pub/sub semantics): a
    message published while a subscriber is disconnected is gone."""

    def publish(self, channel: str, message: Key) -> Awaitable[None]:
        """Send `message` to every current subscriber of `channel`."""
        ...

    def subscribe(self, channel: str, handler: Callable[[Key], None]) -> None:
        """Call `handler(message)` for each message delivered on `channel`."""
        ...


class Metrics(Protocol):
    """What a part may report beyond requests (write-behind's flush lag, say)."""

    def observe(self, name: str, value: float) -> None:
        """One sample of a distribution; the summary gets name_p50, _p99 and _max."""
        ...

    def count(self, name: str, n: int = 1) -> None:
        """Add to a counter; the summary gets `name`."""
        ...

    def peak(self, name: str, value: float) -> None:
        """Track a maximum; the summary gets name_max."""
        ...


class NoMetrics:
    """Metrics that go nowhere (for parts used outside a run)."""

    def observe(self, name: str, value: float) -> None:
        pass

    def count(self, name: str, n: int = 1) -> None:
        pass

    def peak(self, name: str, value: float) -> None:
        pass
