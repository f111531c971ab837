"""Match a server's memory limit to a capacity in keys.

A Redis-protocol server limits memory in bytes (`maxmemory`), the simulator
in keys. A byte limit holds a different number of keys on each build of the
server (allocator, version, key and value sizes, TTLs), so the limit is
found by measurement on the very server that will run, as DESIGN.md asks:

1. write a sample of keys shaped like the run's (same value size, TTL or
   not) without a limit and take the `used_memory` delta per key;
2. set `maxmemory` to the empty server's memory plus capacity x that, fill
   the server well past capacity, read how many keys it held (DBSIZE) and
   correct the limit by the difference; repeat until it holds the capacity
   within 0.2% (or a few rounds have passed);
3. FLUSHALL, so the run starts cold.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import OutOfMemoryError

from lab.codec import encode
from lab.core import Versioned

SAMPLE_KEYS = 10_000
ROUNDS = 5
BATCH = 1000


@dataclass(frozen=True)
class Calibration:
    """What the calibration found for one server."""

    capacity: int
    bytes_per_key: float
    maxmemory: int
    held: int
    rounds: int
    empty_memory: int
    """used_memory of the empty server with only the calibrating client connected."""


def _fill(
    client: redis.Redis,
    count: int,
    value: bytes,
    ttl_ms: int | None,
    offset: int = 0,
    prefix: str = "",
) -> None:
    for start in range(0, count, BATCH):
        pipe = client.pipeline(transaction=False)
        for i in range(start + offset, min(start + BATCH, count) + offset):
            pipe.set(f"{prefix}key:{i}", value, px=ttl_ms)
        for reply in pipe.execute(raise_on_error=False):
            # a tiny limit can sit below what the server needs besides keys (the
            # pipeline's own buffers, allocator slack): then it refuses instead of
            # evicting, which for counting purposes just means "full"
            if isinstance(reply, Exception) and not isinstance(reply, OutOfMemoryError):
                raise reply


def _used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def calibrate(
    client: redis.Redis,
    capacity: int,
    value_size: int,
    *,
    policy: str = "allkeys-lru",
    samples: int = 10,
    ttl: float | None = None,
    key_prefix: str = "",
) -> Calibration:
    """Set `maxmemory` on the server behind `client` so it holds `capacity` keys.

    `key_prefix` goes before every sample key (a cluster node takes only keys of
    its own slots: a hash tag of one of them)."""
    value = encode(Versioned(1, value_size))
    ttl_ms = max(1, round(ttl * 1000)) if ttl is not None else None
    if ttl_ms is not None:
        ttl_ms = max(ttl_ms, 3_600_000)  # nothing may expire while we count
    client.config_set("maxmemory", 0)
    client.config_set("maxmemory-policy", policy)
    client.config_set("maxmemory-samples", samples)
    client.flushall()
    empty = _used_memory(client)
    sample = min(capacity, SAMPLE_KEYS)
    _fill(client, sample, value, ttl_ms, prefix=key_prefix)
    per_key = max((_used_memory(client) - empty) / sample, 1.0)
    client.flushall()

    limit = empty + round(capacity * per_key)
    held = 0
    tolerance = max(1, round(capacity * 0.002))
    rounds = 0
    for rounds in range(1, ROUNDS + 1):  # noqa: B007 (reported)
        client.config_set("maxmemory", limit)
        _fill(client, capacity + max(capacity // 2, 100), value, ttl_ms, prefix=key_prefix)
        held = int(client.dbsize())
        client.config_set("maxmemory", 0)
        client.flushall()
        if abs(held - capacity) <= tolerance:
            break
        limit += round((capacity - held) * per_key)
    client.config_set("maxmemory", limit)
    return Calibration(capacity, per_key, limit, held, rounds, empty)


class CapacityController:
    """Keeps each server at its capacity in keys while the run goes on.

    The calibration counts keys with one idle connection; during a run every
    client connection holds query and reply buffers (16 KiB or more each in
    Redis 7, growing under load and shrunk by the server when idle) that
    count against `maxmemory` and would crowd keys out. So `prime` raises
    each limit by the memory the run's connections take (plus a margin of
    `CONNECTION_MARGIN` each), and every `period` seconds the limit of a node
    that holds more keys than its capacity, or that evicted while holding
    fewer, is set to the memory in use plus the missing keys x bytes per key
    (minus the excess keys). A node that holds fewer
    keys without evicting is not full yet and is left alone (expired keys are
    not replaced by a larger limit).
    """

    CONNECTION_MARGIN = 16 * 1024

    def __init__(
        self,
        addresses: list[tuple[str, int]],
        calibrations: list[Calibration],
        *,
        period: float = 0.05,
        connection: dict[str, Any] | None = None,
    ) -> None:
        self.connection = dict(connection or {})
        self.calibrations = calibrations
        self.period = period
        self.limits = [c.maxmemory for c in calibrations]
        self.adjustments = 0
        self._evicted = [0] * len(addresses)
        self._clients = [self._client(address) for address in addresses]
        self._retired: list[aioredis.Redis] = []

    def _client(self, address: tuple[str, int]) -> aioredis.Redis:
        return aioredis.Redis(
            host=address[0],
            port=address[1],
            socket_timeout=1.0,
            socket_connect_timeout=1.0,
            retry=Retry(NoBackoff(), 0),
            **self.connection,
        )

    def retarget(self, index: int, address: tuple[str, int]) -> None:
        """Node `index` is now served at `address` (a replica took over)."""
        self._retired.append(self._clients[index])
        self._clients[index] = self._client(address)
        self._evicted[index] = 0

    async def prime(self, connections: int) -> None:
        """Before the run, with its `connections` per node open and the servers still
        empty: raise each limit by the memory those connections take, plus a margin."""
        for i, client in enumerate(self._clients):
            used = int((await client.info("memory"))["used_memory"])
            extra = max(used - self.calibrations[i].empty_memory, 0)
            extra += connections * self.CONNECTION_MARGIN
            self.limits[i] = self.calibrations[i].maxmemory + extra
            await client.config_set("maxmemory", self.limits[i])

    async def adjust(self) -> None:
        """Look once at every node and correct the limits that are off."""
        for i, client in enumerate(self._clients):
            cal = self.calibrations[i]
            try:
                evicted = int((await client.info("stats"))["evicted_keys"])
                held = int(await client.dbsize())
                used = int((await client.info("memory"))["used_memory"])
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
                continue  # a node that is down has nothing to hold
            evicting = evicted != self._evicted[i]
            self._evicted[i] = evicted
            error = cal.capacity - held
            if abs(error) <= max(1, cal.capacity // 500) or (error > 0 and not evicting):
                continue
            # the memory in use now, plus (or minus) the keys missing (or in excess)
            self.limits[i] = used + round(error * cal.bytes_per_key)
            try:
                await client.config_set("maxmemory", self.limits[i])
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
                continue
            self.adjustments += 1

    async def run(self) -> None:
        """Adjust forever (until cancelled)."""
        while True:
            await asyncio.sleep(self.period)
            await self.adjust()

    async def close(self) -> None:
        for client in [*self._clients, *self._retired]:
            await client.aclose()
