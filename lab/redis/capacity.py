"""Hold each server's DATA memory at a budget, whatever its clients' buffers do.

Redis (and Valkey) evict when `used_memory - mem_not_counted_for_evict` passes
`maxmemory`. `used_memory` holds the data (keys, values and the key
dictionaries) but also memory that is not data: the server's own startup
allocations, every connection's query and reply buffers (16-20 KiB for a
connection that wakes up on Redis 7.0, shrunk again after 2 s idle), cluster
links, script caches. A limit on `used_memory` therefore holds fewer keys
whenever connections are busy: a burst of waking connections made a 100-byte
cache evict everything and then refuse fills (OOM).

So the lab limits the data: a node's budget is the data memory its capacity
takes (for a capacity in keys: measured by writing that many of the node's
own keys, shaped like the run's, on the very server that will run; for a
capacity in bytes: the bytes), and

    maxmemory = non-data memory counted for eviction now + data of the empty server + budget

is set before the run and re-set every `period` seconds by `CapacityController`.
Non-data memory is `used_memory_overhead` minus the key dictionaries' share of
it (MEMORY STATS `db.N`); the client part is read in real time because
`maxmemory-clients` is set to a size no run reaches (it makes the server
account a client's buffers as they change, not once a second in its cron),
and the cache's idle connections are kept warm (`RedisCache.keep_warm`), so a
connection does not take 20 KiB at once when it wakes up, nor 16 KiB for a reply
that does not fit its shrunk reply buffer. docs/memory.md has the measurements.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

SAMPLE_KEYS = 50_000
"""Keys written at most to measure a budget (more: scaled from the sample)."""
BATCH_BYTES = 1 << 16
"""Bytes of values per pipeline while measuring. Small: Valkey 8+ keeps a large query
buffer it shares between clients and counts as data until its cron trims it, so a
1 MiB pipeline could still be counted in the empty server's reading (seen: a 16 KiB
budget 18% short on Valkey 9)."""
RETARGET_GRACE = 2.0
"""Seconds after a failover during which the limit leaves room for new connections."""
CONNECTION_BYTES = 40 * 1024
"""What a new connection takes on Redis 7.0 at once (query and reply buffers, ~37 KiB)."""
GAIN = 0.8
"""Fraction of the missing keys' marginal bytes the controller adds per step."""
LARGE_FILL = 2.5
"""Bytes a fill of an n-byte value takes at once, at most, over n. A value of 32 KiB or
more arrives in a query buffer of its own size that becomes the stored string, and the
server gives the connection a new buffer of the same size for the next one (Redis 7.0,
Valkey 9: `processMultibulkBuffer`), trimmed later by its cron: twice the value; and the
allocator rounds each up to its size class (jemalloc: up to 1.25x; 600,000 B take 640
KiB). Measured: a 600 KB SET into a node with 594 KB of room evicted 97 keys of ~6 KB."""
EVICT_ROUNDS = 4
"""Readings at most per look at a node held by count with a reserve (`_adjust_one`)."""
CLIENTS_UNLIMITED = 1 << 40
"""maxmemory-clients: far above any run, so no client is ever evicted, but set, so the
server tracks each client's memory in real time."""
SETTLE_QUIET = 1.1
"""Seconds the non-data memory must stay put before a byte-budget run starts (the
server's cron visits every client once a second at `hz` 10)."""
SETTLE_MAX = 6.0
"""Seconds to wait at most (a server that would not turn reply-buffer resizing off
shrinks a new connection's reply buffer 5 s after it connected)."""
SETTLE_SLACK = 2048
"""Bytes of non-data change that count as settled (a poll's own reply, ...)."""
DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


@dataclass(frozen=True)
class Memory:
    """One reading of a server's memory (INFO memory + MEMORY STATS)."""

    used: int
    not_counted: int
    """mem_not_counted_for_evict: replication and AOF buffers, left out by the server."""
    overhead: int
    """used_memory_overhead: startup, clients, replication, scripts, key dictionaries."""
    keyspace: int
    """The key dictionaries' part of the overhead (entries and buckets): data."""
    keys: int = 0
    """DBSIZE."""
    rehashing: int = 0
    """Bytes of key tables being rehashed (Valkey 8+ reports them; Redis 7.0 does not)."""

    @property
    def data(self) -> int:
        """Data memory as the server counts it: the dataset plus the key dictionaries
        (an empty server has some: see `Calibration.empty_data`)."""
        return self.used - self.overhead + self.keyspace

    @property
    def counted_nondata(self) -> int:
        """The memory besides data that counts against maxmemory."""
        return self.overhead - self.keyspace - self.not_counted


def parse_memory(info: dict[str, Any], stats: dict[str, Any], keys: int = 0) -> Memory:
    """A `Memory` from INFO memory and MEMORY STATS (Redis 7, Valkey 7-9)."""
    keyspace = sum(
        int(v)
        for name, db in stats.items()
        if name.startswith("db.") and isinstance(db, dict)
        for v in db.values()
    )
    return Memory(
        # MEMORY STATS takes its figures before it writes its reply; INFO's used_memory
        # includes the INFO text built so far (~1.5 KiB: 15 keys of 100 B on Valkey)
        used=int(stats["total.allocated"]),
        not_counted=int(info.get("mem_not_counted_for_evict", 0)),
        overhead=int(stats["overhead.total"]),
        keyspace=keyspace,
        keys=keys,
        rehashing=int(stats.get("overhead.db.hashtable.rehashing", 0)),
    )


def read_memory(client: redis.Redis) -> Memory:
    """MEMORY STATS first: the replies of the commands before it in the pipeline would
    still be waiting to be written, counted (~1.3 KiB on Valkey)."""
    pipe = client.pipeline(transaction=False)
    pipe.memory_stats()
    pipe.info("memory")
    pipe.dbsize()
    stats, info, keys = pipe.execute()
    return parse_memory(info, stats, keys)


SETTLE_READS = 20
"""Readings at most (50 ms apart) until an idle server's data stops moving."""


def read_settled(client: redis.Redis, pause: float = 0.05) -> Memory:
    """A reading of an idle server once two in a row agree and no key table is being
    rehashed. Right after a fill, a flush or the first MEMORY STATS the server is still
    moving memory for a moment: a table's incremental rehash holds both tables (4 KiB
    and more), Valkey 9 trims the query buffer it shares between clients in its cron.
    Read once, on two busy cores, the empty Valkey 9 server read 9 KiB high and a full
    one 4 KiB high (a 500-key budget of 16-B values 10-20% off)."""
    last = read_memory(client)
    for _ in range(SETTLE_READS):
        time.sleep(pause)
        now = read_memory(client)
        if now.data == last.data and now.rehashing == 0:
            return now
        last = now
    return last


async def read_memory_async(client: aioredis.Redis) -> Memory:
    pipe = client.pipeline(transaction=False)
    pipe.memory_stats()
    pipe.info("memory")
    pipe.dbsize()
    stats, info, keys = await pipe.execute()
    return parse_memory(info, stats, keys)


@dataclass(frozen=True)
class Calibration:
    """What the lab measured on one server before the run."""

    budget: int
    """Data bytes the node holds when full."""
    bytes_per_key: float
    """Data bytes per key of the sample (for a capacity in keys: budget / capacity)."""
    empty_data: int
    """`Memory.data` of the empty server (allocations besides keys the server counts as
    dataset): the limit holds `empty_data + budget` of data."""
    maxmemory: int
    """The limit set at the end of the calibration (its connections then)."""
    capacity: int | None = None
    """The capacity in keys it was measured for (None: a capacity in bytes)."""
    by_count: bool = False
    """Hold `capacity` keys by counting them (a capacity in keys, as the simulator holds
    it: the most keys a node may hold, whatever their sizes), not bytes."""
    marginal_per_key: float = 0.0
    """Bytes one key frees when deleted from a full node (less than `bytes_per_key`: the
    dictionary's buckets stay; on Valkey 8+ much less). The controller's step."""
    reserve: int = 0
    """By count, with values of different sizes: room kept above the node's data while
    it holds at most its capacity, so that no fill, however large, evicts keys to make
    room for itself (0 for one size). Keys past the capacity are evicted at the
    controller's next look, by the server's own policy (`limit`)."""

    def limit(self, now: Memory, empty_data: int | None = None) -> int:
        """maxmemory that lets this node hold its capacity, given `now`.

        By count (a capacity in keys): the memory counted now plus the missing keys
        (minus the excess), so whatever else the server allocates as dataset on first use
        (pub/sub, scripts, a connection's first commands: ~25 KiB each) never costs keys.
        Otherwise: non-data memory now + the empty server's data (`empty_data`, measured
        again just before the run) + the budget."""
        if self.by_count and self.capacity is not None:
            # a step of GAIN x the marginal bytes of a key: a node short of (or over) its
            # capacity moves towards it without overshooting it
            missing = self.capacity - now.keys
            step = GAIN * min(self.marginal_per_key or self.bytes_per_key, self.bytes_per_key)
            reserve = self.reserve if missing >= 0 else 0
            return now.used - now.not_counted + round(missing * step) + reserve
        base = self.empty_data if empty_data is None else empty_data
        return now.counted_nondata + base + self.budget


def configure_eviction(client: redis.Redis, policy: str, samples: int) -> None:
    """The eviction policy, its samples, real-time client memory accounting, and
    reply buffers of a fixed size where the server allows it.

    Redis 7.0+ and Valkey shrink a connection's 16 KiB reply buffer 5 s after it
    connected (to ~1 KiB when its replies are small) and grow it back under large
    replies, one step per cron visit. Every such step moves non-data memory, and a
    fall of it opens room under `maxmemory` until the controller's next reading (50
    ms): there a full dict (keys = buckets) doubles its bucket array, and a dict shrinks
    only under 10% full, so it stays doubled for the run. Measured (Redis 7.0.15, 224
    KiB of 100-B values with a TTL, 67 connections whose reply buffers fell from 16 KiB
    to 1 KiB, 1.07 MB, over the run's first seconds): the main and expires dicts
    went from 1,024 to 2,048 buckets (16 KiB more) and the node held 944 keys, the
    simulator 1,025. With resizing off (`DEBUG REPLYBUFFER resizing 0`, Redis 6's
    fixed buffers; the lab's servers allow DEBUG from local clients) it held 1,024. A
    server that refuses DEBUG keeps resizing and `CapacityController.settle` waits for
    it instead (the room it opens later stays a risk there)."""
    client.config_set("maxmemory-policy", policy)
    client.config_set("maxmemory-samples", samples)
    with contextlib.suppress(redis.exceptions.ResponseError):  # before Redis 7: none
        client.config_set("maxmemory-clients", CLIENTS_UNLIMITED)
    with contextlib.suppress(redis.exceptions.ResponseError):  # no DEBUG, or before 7.0
        client.execute_command("DEBUG", "REPLYBUFFER", "resizing", 0)  # type: ignore[no-untyped-call]


def _first_use(
    client: redis.Redis, names: Sequence[str], value: Callable[[str], bytes], ttl_ms: int | None
) -> None:
    """Empty the server after making it allocate what it allocates once, on the first
    writes, deletes and memory readings (~10-25 KiB each, counted as dataset): not the
    keys' memory, so not in their measurement."""
    sample = list(names[:100])
    _fill(client, sample, value, ttl_ms)
    pipe = client.pipeline(transaction=False)
    for name in sample[::10]:
        pipe.delete(name)
    pipe.execute()
    client.flushall(asynchronous=False)  # (Valkey 8+ flushes in the background by default)
    read_settled(client)


def _marginal(client: redis.Redis, sample: list[str], full: int) -> float:
    """Bytes a key frees when deleted from the full sample (every 10th key)."""
    gone = sample[::10]
    pipe = client.pipeline(transaction=False)
    for name in gone:
        pipe.delete(name)
    pipe.execute()
    return max((full - read_settled(client).data) / max(len(gone), 1), 1.0)


def _fill(
    client: redis.Redis, names: Sequence[str], value: Callable[[str], bytes], ttl_ms: int | None
) -> None:
    pipe, pending = client.pipeline(transaction=False), 0
    for name in names:
        raw = value(name)
        pipe.set(name, raw, px=ttl_ms)
        pending += len(raw) + len(name)
        if pending >= BATCH_BYTES:
            pipe.execute()
            pipe, pending = client.pipeline(transaction=False), 0
    pipe.execute()


def calibrate(
    client: redis.Redis,
    names: Sequence[str],
    value: Callable[[str], bytes],
    *,
    capacity: int | None = None,
    budget: int | None = None,
    policy: str = "allkeys-lru",
    samples: int = 10,
    ttl: float | None = None,
    by_count: bool = False,
    largest: int | None = None,
) -> Calibration:
    """Measure the data memory of `names` (the node's own keys, in the order the run is
    likely to fill them) with their values, then set the limit.

    With `capacity` (keys) the budget is what that many keys take (`names` holds at
    least min(capacity, SAMPLE_KEYS) of them); with `budget` (bytes) it is given and
    the sample only says how many bytes a key takes. `largest`: the largest value the
    run can store, when values differ in size (`Calibration.reserve`). The server ends
    empty.

    Why a reserve: held by count with only the step's room, a fill larger than the
    room evicts keys to fit, and a 700 KB value (the grid's lognormal mix, median
    1 KiB, p99 64 KiB, over 10,000 keys) evicted 180 of a node's 1,000 keys at once;
    3 nodes held 1-8% fewer keys than their capacity (4-8% with 10% writes)."""
    if (capacity is None) == (budget is None):
        raise ValueError("calibrate needs a capacity in keys or a budget in bytes")
    ttl_ms = None if ttl is None else max(round(ttl * 1000), 3_600_000)  # none expire now
    client.config_set("maxmemory", 0)
    configure_eviction(client, policy, samples)
    _first_use(client, names, value, ttl_ms)
    empty = read_settled(client)
    if capacity is not None:
        wanted = capacity
    else:  # as many keys as the budget holds (values alone), to measure bytes per key
        assert budget is not None
        wanted = max(1, budget // max(len(value(names[0])), 1))
    sample = list(names[: min(wanted, SAMPLE_KEYS, len(names))])
    _fill(client, sample, value, ttl_ms)
    measured = read_settled(client).data - empty.data
    marginal = _marginal(client, sample, measured + empty.data)
    client.flushall(asynchronous=False)
    per_key = max(measured / max(len(sample), 1), 1.0)
    if capacity is not None:
        budget = measured if len(sample) >= capacity else round(per_key * capacity)
    assert budget is not None
    limit = read_memory(client).counted_nondata + empty.data + budget
    client.config_set("maxmemory", limit)
    reserve = 0
    if by_count and largest is not None:
        mean = sum(len(value(n)) for n in sample) / len(sample)
        reserve = max(0, round(LARGE_FILL * largest - mean))
    return Calibration(budget, per_key, empty.data, limit, capacity, by_count, marginal, reserve)


class CapacityController:
    """Keeps each node's limit at its non-data memory + its data budget during a run
    (`Calibration.limit`: by key count for a capacity in keys).

    Every `period` seconds it reads every node's memory (one round trip) and sets
    `maxmemory` if it moved. Growth of non-data memory still evicts at once (the
    server acts before the controller can), which is why every connection is open
    before `prime` and client buffers are kept steady (`RedisCache.keep_warm`); what
    it prevents is the drift (buffers grown or shrunk, scripts loaded, replication)
    that a fixed limit turns into fewer or more keys held.
    """

    def __init__(
        self,
        addresses: list[tuple[str, int]],
        calibrations: list[Calibration],
        *,
        period: float = 0.05,
        connection: dict[str, Any] | None = None,
        connections: int = 64,
    ) -> None:
        self.connection = dict(connection or {})
        self.connections = connections
        """The run's connections per node (for the room after a failover)."""
        self._grace_until = [0.0] * len(addresses)
        self.calibrations = calibrations
        self.period = period
        self.limits = [c.maxmemory for c in calibrations]
        self.empty_data = [c.empty_data for c in calibrations]
        """Data memory of each empty node, measured again just before the run: a server
        allocates some things on first use (pub/sub, scripts, a command's first reply,
        ~25 KiB each) that it counts as dataset but are no keys."""
        self.adjustments = 0
        self.data = [0] * len(addresses)
        """The last data memory seen per node, above the empty server's."""
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
        """Node `index` is now served at `address` (a replica took over). The run's
        connections move there one by one, each taking ~37 KiB at once on Redis 7.0:
        for `RETARGET_GRACE` seconds the limit leaves room for all of them, so a small
        cache is not evicted whole and then refusing fills while they arrive."""
        self._retired.append(self._clients[index])
        self._clients[index] = self._client(address)
        self._grace_until[index] = time.monotonic() + RETARGET_GRACE

    def takeover_limit(self, index: int) -> int:
        """The limit to set on node `index` the moment it is served elsewhere: its
        current one plus the grace `retarget` allows. Not the bare limit: the run's
        connections arrive within 0.1 s of the takeover, before the controller's next
        look (measured on Valkey 9 beside two CPU hogs: 10 to 66 connections and
        34 KiB to 1.1 MB of client memory in 0.1 s, while the next adjustment came
        0.18 s later; the bare limit evicted all 57 keys and then refused 100 fills as
        out of memory)."""
        grace = (
            self.connections * CONNECTION_BYTES
            if time.monotonic() < self._grace_until[index]
            else 0
        )
        return self.limits[index] + grace

    async def prime(self, scripts: Sequence[str] = ()) -> None:
        """Just before the run, with its connections open, its subscriptions made and
        the nodes still empty: load the run's `scripts`, measure each empty node again
        and set the first limits."""
        for i, client in enumerate(self._clients):
            try:
                for script in scripts:
                    await client.script_load(script)
                if await client.dbsize() == 0:
                    now = await read_memory_async(client)
                    now = await read_memory_async(client)  # (the first reading allocates)
                    self.empty_data[i] = now.data
            except DOWN:
                continue
        await self.adjust()
        await self.settle()

    async def settle(self, limit: float = SETTLE_MAX) -> float:
        """Wait (at most `limit` s) until the non-data memory of every node held to a
        byte budget has stayed put for `SETTLE_QUIET` s, keeping the limits current;
        return the seconds waited (~1.1 s when `configure_eviction` turned reply-buffer
        resizing off). A capacity in keys is held by counting keys: no wait.

        Why it matters for a byte budget: room that opens under `maxmemory` between two
        of the controller's readings lets a full dict (keys = buckets) double its bucket
        array (`dictExpandAllowed`), for the rest of the run (see `configure_eviction`)."""
        nodes = [i for i, c in enumerate(self.calibrations) if not c.by_count]
        if not nodes:
            return 0.0
        start = time.monotonic()
        seen: dict[int, tuple[int, float]] = {}  # node -> (non-data, since when)
        while True:
            now = time.monotonic()
            for i in nodes:
                try:
                    nondata = (await read_memory_async(self._clients[i])).counted_nondata
                except DOWN:
                    seen[i] = (0, start)
                    continue
                last = seen.get(i)
                if last is None or abs(nondata - last[0]) > SETTLE_SLACK:
                    seen[i] = (nondata, now)
            await self.adjust()
            if now - start >= limit or all(now - t >= SETTLE_QUIET for _, t in seen.values()):
                return now - start
            await asyncio.sleep(self.period)

    async def _adjust_one(self, index: int) -> None:
        """Read node `index` and set its limit. Held by count with a reserve, a node past
        its capacity is brought back at once: the limit below its data makes the server
        evict (CONFIG SET evicts before it replies), and the next reading gives the
        reserve back, so a large fill finds its room (`Calibration.reserve`)."""
        client, cal = self._clients[index], self.calibrations[index]
        try:
            for _ in range(EVICT_ROUNDS):
                now = await read_memory_async(client)
                self.data[index] = now.data - self.empty_data[index]
                limit = cal.limit(now, self.empty_data[index])
                if time.monotonic() < self._grace_until[index]:
                    limit += self.connections * CONNECTION_BYTES
                if limit != self.limits[index]:
                    await client.config_set("maxmemory", limit)
                    self.limits[index] = limit
                    self.adjustments += 1
                if not cal.reserve or cal.capacity is None or now.keys <= cal.capacity:
                    return
        except DOWN:
            return  # a node that is down has nothing to hold

    async def adjust(self) -> None:
        """Look once at every node and re-set the limits that moved."""
        await asyncio.gather(*(self._adjust_one(i) for i in range(len(self._clients))))

    async def run(self) -> None:
        """Adjust forever (until cancelled)."""
        while True:
            await asyncio.sleep(self.period)
            await self.adjust()

    async def close(self) -> None:
        for client in [*self._clients, *self._retired]:
            await client.aclose()
