"""The Cache protocol on real Redis-protocol servers (`redis.asyncio` + hiredis).

Values: a `Versioned` is stored as `b"<version>:<size>:<expiry>:<delta>:"`
padded with `x` to `size` bytes, so a server holds as many bytes per value as
the scenario says and every field survives the round trip. Keys are stored
under `lab.sharding.key_name`.

Topology: N independent servers with client-side hashing through
`lab.sharding.router`, the very function the simulator uses, so every key
lives on the same node index on both backends.

Failures a client would see in production (connection refused or reset,
timeouts) become `CacheUnavailable`; anything else (a protocol error, a
wrong type) is a bug and propagates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError
from redis.exceptions import TimeoutError as RedisTimeoutError

from lab.core import Key, Versioned
from lab.core.errors import CacheUnavailable
from lab.sharding import Sharding, key_name, owner_table, router

UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OutOfMemoryError, OSError, TimeoutError)
"""Exceptions that mean "the node could not serve the command" (unreachable, too slow,
or refusing writes because it is out of memory and cannot evict)."""


def encode(value: Versioned) -> bytes:
    """`b"<version>:<size>:<expiry>:<delta>:xxx..."`, `size` bytes long when the header fits.

    `expiry` and `delta` (read by XFetch and refresh-ahead) are written with
    `repr`, so the floats survive the round trip exactly.
    """
    expiry = getattr(value, "expiry", 0.0)
    delta = getattr(value, "delta", 0.0)
    if expiry or delta:
        head = b"%d:%d:%a:%a:" % (value.version, value.size, expiry, delta)
    else:
        head = b"%d:%d:0:0:" % (value.version, value.size)
    pad = value.size - len(head)
    return head + b"x" * pad if pad > 0 else head


def decode(raw: bytes) -> Versioned:
    """The inverse of `encode`; a counter (from `incr`) reads as `Versioned(n, 8)`,
    as in the simulator."""
    if b":" not in raw:
        return Versioned(int(raw), 8)
    version, size, expiry, delta, _ = raw.split(b":", 4)
    if expiry == b"0" and delta == b"0":
        return Versioned(int(version), int(size))
    return Versioned(int(version), int(size), float(expiry), float(delta))


class RedisCache:
    """A sharded cache over independent servers (`Cache` protocol)."""

    def __init__(
        self,
        addresses: Sequence[tuple[str, int]],
        *,
        sharding: Sharding = "ketama",
        keys: int = 0,
        timeout: float = 1.0,
        max_connections: int = 64,
    ) -> None:
        if not addresses:
            raise ValueError("a RedisCache needs at least one server")
        self.addresses = list(addresses)
        self.clients = [
            aioredis.Redis(
                connection_pool=aioredis.BlockingConnectionPool(
                    host=host,
                    port=port,
                    max_connections=max_connections,
                    timeout=None,
                    socket_timeout=timeout,
                    socket_connect_timeout=timeout,
                    retry=Retry(NoBackoff(), 0),
                )
            )
            for host, port in self.addresses
        ]
        n = len(self.clients)
        self._route = router(sharding, n)
        self._owner_of_int = owner_table(sharding, n, keys) if keys else []

    def client_of(self, key: Key) -> aioredis.Redis:
        """The client of the node that owns `key` (same routing as the simulator)."""
        try:
            return self.clients[self._owner_of_int[key]]  # type: ignore[index]
        except (IndexError, TypeError):
            return self.clients[self._route(key_name(key))]

    async def get(self, key: Key) -> Versioned | None:
        try:
            raw = await self.client_of(key).get(key_name(key))
        except UNAVAILABLE as exc:
            raise CacheUnavailable(f"get {key_name(key)}: {exc}") from exc
        return None if raw is None else decode(raw)  # type: ignore[arg-type]  # bytes: no decode_responses

    async def set(
        self, key: Key, value: Versioned, ttl: float | None = None, nx: bool = False
    ) -> bool:
        px = max(1, round(ttl * 1000)) if ttl is not None else None
        try:
            stored = await self.client_of(key).set(key_name(key), encode(value), px=px, nx=nx)
        except UNAVAILABLE as exc:
            raise CacheUnavailable(f"set {key_name(key)}: {exc}") from exc
        return bool(stored)

    async def delete(self, key: Key) -> None:
        try:
            await self.client_of(key).delete(key_name(key))
        except UNAVAILABLE as exc:
            raise CacheUnavailable(f"delete {key_name(key)}: {exc}") from exc

    async def incr(self, key: Key) -> int:
        try:
            return int(await self.client_of(key).incr(key_name(key)))
        except UNAVAILABLE as exc:
            raise CacheUnavailable(f"incr {key_name(key)}: {exc}") from exc

    async def connect(self, per_node: int) -> None:
        """Open `per_node` connections to every node now (PINGs in parallel), so that
        the run does not pay for connecting and their memory is there from the start."""
        try:
            await asyncio.gather(
                *(client.ping() for client in self.clients for _ in range(per_node))
            )
        except UNAVAILABLE as exc:
            raise CacheUnavailable(f"connect: {exc}") from exc

    async def close(self) -> None:
        """Close every connection (call before the event loop ends)."""
        for client in self.clients:
            await client.aclose()
