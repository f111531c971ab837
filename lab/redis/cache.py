"""The Cache protocol on real Redis-protocol servers (`redis.asyncio` + hiredis).

Values are stored with `lab.codec` (a header padded to the value size), keys
under `lab.sharding.key_name`.

Topology: N independent servers with client-side hashing through
`lab.sharding.router`, the very function the simulator uses, so every key
lives on the same node index on both backends; or a Redis Cluster, routed by
the slot table (`slot_owner`) like a cluster client: a MOVED reply or an
unreachable node makes the client ask the cluster (CLUSTER SLOTS) which
server now serves each node's slots, so after a failover it follows the
promoted replica.

Failures a client would see in production (connection refused or reset,
timeouts) become `CacheUnavailable`; anything else (a protocol error, a
wrong type) is a bug and propagates.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from time import perf_counter
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ClusterDownError, MovedError, OutOfMemoryError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from lab.codec import decode, encode
from lab.core import Key, Versioned
from lab.core.errors import CacheRefused, CacheUnavailable
from lab.metrics.ops import OpLatencies
from lab.sharding import (
    UNKNOWN,
    OwnerTable,
    Sharding,
    key_name,
    key_slot,
    lazy_owner_table,
    router,
)

Address = tuple[str, int]

try:
    from redis.driver_info import DriverInfo

    DRIVER: dict[str, Any] = {"driver_info": DriverInfo()}
    """Shared by every connection: redis-py >= 7 otherwise looks its own version up in
    the installed packages' metadata for each new connection (a scan of sys.path:
    about 10 ms on a busy machine, on the event loop, so a pool growing to 64
    connections while a node hangs held the load generator for half a second)."""
except ImportError:  # older redis-py looks it up once, at import
    DRIVER = {}

SETUP_TIMEOUT = 10.0
"""Seconds allowed to open the connections before a run (not the client timeout)."""

UNAVAILABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    OutOfMemoryError,
    ClusterDownError,
    OSError,
    TimeoutError,
)
"""Exceptions that mean "the node could not serve the command" (unreachable, too slow,
refusing writes because it is out of memory and cannot evict, or a cluster that
cannot serve the slot)."""
INF = float("inf")
TOUCH: tuple[tuple[Any, ...], ...] = (
    ("GET", "lab:touch"),
    ("SET", "lab:touch", "x", "PX", 60_000, "NX"),
    ("INCRBY", "lab:touch:n", 0),
    ("DEL", "lab:touch", "lab:touch:n"),
)
"""One of each kind of command a run sends, on every connection before the run."""
WARM_REPLY_MAX = 16 * 1024
"""A reply buffer never grows past 16 KiB (PROTO_REPLY_CHUNK_BYTES)."""
ONE_READ_PAYLOAD = 16 * 1024 - 64
"""The largest warm ECHO whose whole command (payload and header) fits in one 16 KiB
read (PROTO_IOBUF_LEN): on a server with a shared query buffer it leaves no private one."""
SHARED_QUERY_BUFFER = {"valkey": (8, 0), "redis": (8, 0)}
"""The first version of each server that reads every client into one shared query
buffer (valkey-io/valkey#258, redis/redis#13488) and gives a client a private one only
for a command that did not arrive whole."""


def shares_query_buffer(server_label: str) -> bool:
    """Does the server (`Deployment.server_label`, e.g. ``valkey-9.1.2``) read clients into
    one shared query buffer? Unknown labels: no (the Redis 7.0 behaviour)."""
    flavor, _, version = server_label.partition("-")
    first = SHARED_QUERY_BUFFER.get(flavor)
    numbers = version.split(".")[:2]
    if first is None or not all(n.isdigit() for n in numbers):
        return False
    return tuple(int(n) for n in numbers) >= first


def warm_payload(value_size: int, server_label: str) -> int:
    """Bytes of the ECHO that keeps a connection warm, for values of `value_size`.

    Redis 7.0 gives every connection its own query buffer and frees it after 2 s idle:
    an ECHO the size of a value's reply (at most `WARM_REPLY_MAX`) keeps both buffers
    as a run uses them. A server with a shared query buffer keeps none per connection,
    and an ECHO that does not arrive in one read gets a private one (~45 KiB) until the
    server's cron trims it: 64 connections warmed at once took 2.9 MB more every second
    on Valkey 9, counted against maxmemory (a 3-node capacity in keys of mixed sizes
    held 2,261-2,484 of 3,002 keys, the hit ratio 4-5 points low; docs/memory.md)."""
    size = min(value_size, WARM_REPLY_MAX)
    return min(size, ONE_READ_PAYLOAD) if shares_query_buffer(server_label) else size


WARM_EVERY = 1.0
"""Seconds between two PINGs of an idle connection (Redis frees its query buffer after 2 s)."""
REFRESH_EVERY = 0.05
"""Seconds between two slot-table refreshes of a cluster client at most."""


SET_IF_EQUAL = """
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
end
redis.call('DEL', KEYS[2])
return 1
"""

DELETE_IF_EQUAL = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""


RUNNING, DONE, EXPIRED = "running", "done", "expired"
"""The states of an operation in a pool's deadline queue (`_Pool.call`)."""

SCRIPTS = (SET_IF_EQUAL, DELETE_IF_EQUAL)
"""The Lua scripts a run may call (loaded before it, so their memory is there from the start)."""


class _Timing:
    """Where a cache's nodes report their operation times (successful ones, after
    `measure_after`, a `time.perf_counter` instant: the end of the warm-up)."""

    __slots__ = ("add", "measure_after")

    def __init__(self, ops: OpLatencies) -> None:
        self.add = ops.add
        self.measure_after = INF


def _closed_by_peer(conn: Connection) -> bool:
    """Whether the server closed or reset this idle connection (it was killed or
    restarted, a proxy cut it): the event loop has already seen the EOF. Handing it
    out anyway would fail one command per pooled connection after the node is back,
    an error no client of a healthy node sees."""
    reader = conn._reader  # EOF seen (a reply left unread would be a bug anyway) or an error
    return reader is not None and (reader._eof or reader._exception is not None)  # type: ignore[attr-defined]


def _write(conn: Connection, args: tuple[Any, ...]) -> Awaitable[None] | None:
    """Send `args` on `conn`: None when the command is in the transport's buffer with
    nothing to wait for (the common case: no coroutine at all), else what to await.

    Not `conn.send_command(*args)`: redis-py wraps every write in a task (its
    `asyncio.wait_for` with the socket timeout: a Task, a timer and two loop turns per
    command, a fifth of the real driver's time). Only a full buffer is waited for
    (within the operation's timeout, `_Pool.call`), with redis-py's errors; a
    connection to (re)open or to health-check takes redis-py's own path."""
    writer = conn._writer
    if writer is None or conn.health_check_interval or writer.transport.is_closing():
        return conn.send_command(*args)
    try:
        writer.writelines(conn.pack_command(*args))
    except OSError as exc:
        return _write_failed(conn, exc)
    if writer.transport.get_write_buffer_size():
        return _drain(conn)
    return None


async def _drain(conn: Connection) -> None:
    assert conn._writer is not None
    try:
        await conn._writer.drain()
    except OSError as exc:
        await _write_failed(conn, exc)


async def _write_failed(conn: Connection, exc: OSError) -> None:
    await conn.disconnect(nowait=True)
    raise RedisConnectionError(f"Error while writing to socket. {exc}.") from exc


class _Pool:
    """The connections to one server: at most `size`, handed out LIFO, waiters FIFO.

    Built on redis.asyncio's `Connection` (hiredis parser) but without its
    client and pool machinery on the hot path (measured: ~55% more GETs/s at
    50 concurrent clients), and without redis-py's BlockingConnectionPool,
    which has had lost-wakeup bugs.
    """

    __slots__ = (
        "address",
        "all",
        "created",
        "factory",
        "free",
        "ops",
        "size",
        "timeout",
        "timer",
        "timing",
        "waiters",
    )

    def __init__(
        self,
        address: Address,
        factory: aioredis.ConnectionPool,
        size: int,
        timeout: float,
        timing: _Timing,
    ) -> None:
        self.address = address
        self.timing = timing
        self.factory = factory
        self.size = size
        self.timeout = timeout
        self.free: list[Connection] = []
        self.all: list[Connection] = []
        self.created = 0
        self.waiters: deque[asyncio.Future[Connection]] = deque()
        self.ops: deque[list[Any]] = deque()
        """[deadline (loop time), task, state] of the operations in flight, oldest first
        (with done ones behind the oldest still running)."""
        self.timer: asyncio.TimerHandle | None = None

    async def acquire(self) -> Connection:
        if self.free:
            idle = self.free.pop()
            if _closed_by_peer(idle):  # reconnects on its next command, as redis-py's
                await idle.disconnect(nowait=True)  # own pool does at checkout
            return idle
        if self.created < self.size:
            self.created += 1
            conn: Connection = self.factory.make_connection()  # type: ignore[no-untyped-call]
            self.all.append(conn)
            return conn
        waiter: asyncio.Future[Connection] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(waiter.result())  # handed to us as we were cancelled
            raise

    def release(self, conn: Connection) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self.free.append(conn)

    async def call(self, *args: Any) -> Any:
        """One command, one reply, within the client timeout: waiting for a connection,
        (re)connecting, sending and reading the reply all count against it (the
        connections have no socket timeout of their own). A connection in an unknown
        state (timeout, reset) is dropped (it reconnects on its next use).

        The timer is the pool's, not the operation's: every operation of a pool has the
        same timeout, so their deadlines come in the order they start, and one timer
        armed for the oldest one in flight times them all out (`_expire`). An
        `asyncio.timeout` per operation (a Timeout, a TimerHandle pushed on the loop's
        heap and cancelled) cost ~15 µs of client CPU per GET, 2 shared busy cores."""
        start = perf_counter()  # the operation's time includes waiting for a connection
        loop = asyncio.get_running_loop()
        op: list[Any] = [loop.time() + self.timeout, asyncio.current_task(loop), RUNNING]
        ops = self.ops
        ops.append(op)
        if self.timer is None:
            self.timer = loop.call_at(op[0], self._expire)
        try:
            # `acquire`, without a coroutine when a connection is free
            conn = self.free.pop() if self.free else await self.acquire()
            try:
                if _closed_by_peer(conn):  # reconnects on its next command, as
                    await conn.disconnect(nowait=True)  # redis-py's own pool does
                sending = _write(conn, args)
                if sending is not None:
                    await sending
                reply = await conn.read_response()
            except ResponseError:  # an error reply (OOM, MOVED, ...) was read whole: the
                raise  # connection is fine (a new one would cost the server ~37 KiB at once)
            except BaseException:
                await conn.disconnect(nowait=True)
                raise
            finally:
                if self.waiters:
                    self.release(conn)
                else:
                    self.free.append(conn)
        except asyncio.CancelledError:
            if op[2] is EXPIRED and op[1].uncancel() == 0:
                raise TimeoutError(f"{self.address}: no reply within {self.timeout}s") from None
            raise  # cancelled by someone else (as well)
        finally:
            if op[2] is RUNNING:
                op[2] = DONE
            while ops and ops[0][2] is not RUNNING:  # the oldest are done: forget them
                ops.popleft()
        timing = self.timing
        if start >= timing.measure_after:
            timing.add(perf_counter() - start)
        return reply

    def _expire(self) -> None:
        """The pool's timer: cancel every operation past its deadline (oldest first),
        then wait for the next oldest one still running."""
        self.timer = None
        ops = self.ops
        loop = asyncio.get_running_loop()
        now = loop.time()
        while ops:
            deadline, task, state = ops[0]
            if state is RUNNING:
                if deadline > now:
                    self.timer = loop.call_at(deadline, self._expire)
                    return
                ops[0][2] = EXPIRED
                task.cancel()
            ops.popleft()

    async def warm(self, command: tuple[Any, ...]) -> None:
        """Send `command` to every idle open connection, one at a time from the
        least recently used, so the server never frees its query buffer (Redis 7.0 frees
        it after 2 s idle and takes 16-20 KiB again when the connection wakes up: memory
        that would evict keys at once). The most recently used connections stay free for
        requests meanwhile."""
        for conn in list(self.free):
            if conn not in self.free or not conn.is_connected:
                continue
            self.free.remove(conn)
            try:
                async with asyncio.timeout(self.timeout):
                    await conn.send_command(*command)
                    await conn.read_response()
            except ResponseError:
                pass  # an error reply read whole: the connection is fine
            except UNAVAILABLE:
                await conn.disconnect(nowait=True)  # a node that is down: nothing to keep
            except BaseException:
                await conn.disconnect(nowait=True)
                raise
            finally:
                self.release(conn)

    async def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        for conn in self.all:
            await conn.disconnect()


def _address(entry: Sequence[Any], asked: _Pool) -> Address:
    """A server's (host, port) from a CLUSTER SLOTS entry; an empty host is the one asked."""
    host = entry[0].decode() if isinstance(entry[0], bytes) else str(entry[0])
    return (host or asked.address[0], int(entry[1]))


class RedisCache:
    """A sharded cache over independent servers (`Cache` protocol)."""

    def __init__(
        self,
        addresses: Sequence[Address],
        *,
        sharding: Sharding = "ketama",
        keys: int = 0,
        timeout: float = 1.0,
        max_connections: int = 64,
        slot_owner: Sequence[int] | None = None,
        translate: Mapping[Address, Address] | None = None,
        connection: Mapping[str, Any] | None = None,
    ) -> None:
        """`slot_owner` (node index of every slot) makes this a Redis Cluster client;
        `translate` maps a server's address to the one clients must use for it (a
        fault proxy in front); `connection` adds settings (db, username, password)."""
        if not addresses:
            raise ValueError("a RedisCache needs at least one server")
        self.timeout = timeout
        self.max_connections = max_connections
        self.connection = dict(connection or {})
        self.translate = dict(translate or {})
        self.op_times = OpLatencies()
        self._timing = _Timing(self.op_times)
        self.addresses = list(addresses)
        self.nodes = [self._make_node(address) for address in self.addresses]
        self._retired: list[_Pool] = []
        self._replica_addresses: set[Address] = set()  # learned from CLUSTER SLOTS
        self._spares: dict[Address, _Pool] = {}
        n = len(self.nodes)
        self._slot_owner = list(slot_owner) if slot_owner is not None else None
        if self._slot_owner is not None:
            owners = self._slot_owner
            self._route: Callable[[str], int] = lambda name: owners[key_slot(name)]
            self._owner_of_int: OwnerTable = OwnerTable(sharding, n, keys, self._route)
            self._call: Callable[..., Any] = self._cluster_call
        else:
            self._route = router(sharding, n)
            self._owner_of_int = lazy_owner_table(sharding, n, keys)
            self._call = self._plain_call
        self._memo = self._owner_of_int.memo  # int keys' owners, UNKNOWN until computed
        self._refreshed = -REFRESH_EVERY
        self._refreshing: asyncio.Task[None] | None = None
        self.refreshes = 0
        """Slot-table refreshes that moved a node to another server (failovers followed)."""

    def _make_node(self, address: Address) -> _Pool:
        host, port = self.translate.get(address, address)
        pool = aioredis.ConnectionPool(
            host=host,
            port=port,
            socket_timeout=None,  # `_Pool.call` times the whole operation out
            socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0),
            **DRIVER,
            **self.connection,
        )
        return _Pool(address, pool, self.max_connections, self.timeout, self._timing)

    def measure_ops_after(self, instant: float) -> None:
        """Count operations in `op_times` from this `time.perf_counter` instant on."""
        self._timing.measure_after = instant

    def _plain_call(self, index: int, *args: Any) -> Any:
        return self.nodes[index].call(*args)

    async def _cluster_call(self, index: int, *args: Any) -> Any:
        """A command to a cluster node: on MOVED learn the new owner and retry once; on
        an unreachable node refresh the slot table in the background (it may have
        failed over) and report the failure."""
        try:
            return await self.nodes[index].call(*args)
        except MovedError:
            await self.refresh_slots(force=True)
            try:
                return await self.nodes[index].call(*args)
            except MovedError as again:  # the node asked had not heard of it yet
                raise RedisConnectionError(f"slot moved again: {again}") from again
        except UNAVAILABLE:
            if self._refreshing is None or self._refreshing.done():
                self._refreshing = asyncio.get_running_loop().create_task(self.refresh_slots())
            raise

    async def refresh_slots(self, *, force: bool = False) -> None:
        """Ask the cluster which server serves each node's slots now (CLUSTER SLOTS), as
        cluster clients do; at most every REFRESH_EVERY seconds unless `force`.

        Every reachable primary and known replica is asked, and a server that says it
        serves a range itself is believed first: a replica that has just taken over
        knows it at once, while the other nodes learn it by gossip (slowly when the
        machine is busy), and believing the first answer kept sending to the dead
        primary meanwhile."""
        owners = self._slot_owner
        if owners is None:
            return
        now = asyncio.get_running_loop().time()
        if not force and now - self._refreshed < REFRESH_EVERY:
            return
        self._refreshed = now
        claims: dict[int, Address] = {}  # node index -> the server that says it is it
        heard: dict[int, Address] = {}  # node index -> the first other answer
        for asked in [*self.nodes, *self._spare_pools()]:
            try:
                reply = await asked.call("CLUSTER", "SLOTS")
            except (*UNAVAILABLE, ResponseError):
                continue
            for entry in reply:
                index, address = owners[int(entry[0])], _address(entry[2], asked)
                (claims if address == asked.address else heard).setdefault(index, address)
                self._replica_addresses.update(_address(r, asked) for r in entry[3:])
        for index, address in {**heard, **claims}.items():
            if self.nodes[index].address != address:
                self._retired.append(self.nodes[index])
                self.nodes[index] = self._make_node(address)
                self.refreshes += 1

    def _spare_pools(self) -> list[_Pool]:
        """A pool to each known replica not serving a node now (for `refresh_slots`)."""
        serving = {node.address for node in self.nodes}
        for address in self._replica_addresses - serving - set(self._spares):
            self._spares[address] = self._make_node(address)
        return [pool for address, pool in self._spares.items() if address not in serving]

    def node_of(self, key: Key) -> int:
        """Index of the node that owns `key` (same routing as the simulator)."""
        try:
            return self._owner_of_int[key]  # type: ignore[index]
        except (IndexError, TypeError):
            return self._route(key_name(key))

    async def _command(self, what: str, name: str, node: int, *args: Any) -> Any:
        """One command to `node`; "the node could not serve it" becomes CacheUnavailable
        (what a client sees in production), anything else propagates (a bug)."""
        try:
            return await self._call(node, *args)
        except OutOfMemoryError as exc:
            raise CacheRefused(f"{what} {name}: {exc}") from exc
        except UNAVAILABLE as exc:
            raise CacheUnavailable(f"{what} {name}: {exc}") from exc
        except ResponseError as exc:  # a script's write refused: "... OOM command not allowed"
            if "OOM" in str(exc):
                raise CacheRefused(f"{what} {name}: {exc}") from exc
            raise

    async def get(self, key: Key) -> Versioned | None:
        """`_command("get", name, self.node_of(key), "GET", name)`, inlined: the hot path
        (one coroutine frame and the owner table's checks fewer per GET)."""
        if type(key) is int:
            name = f"key:{key}"
            memo = self._memo
            owner = memo[key] if 0 <= key < len(memo) else UNKNOWN
            if owner == UNKNOWN:
                owner = self.node_of(key)
        else:
            name, owner = key, self.node_of(key)  # type: ignore[assignment]
        try:
            raw = await self._call(owner, "GET", name)
        except OutOfMemoryError as exc:  # as `_command` (GET is never refused for memory)
            raise CacheRefused(f"get {name}: {exc}") from exc
        except UNAVAILABLE as exc:
            raise CacheUnavailable(f"get {name}: {exc}") from exc
        return None if raw is None else decode(raw)

    async def set(
        self, key: Key, value: Versioned, ttl: float | None = None, nx: bool = False
    ) -> bool:
        name = key_name(key)
        args: list[Any] = ["SET", name, encode(value)]
        if ttl is not None:
            args += ["PX", max(1, round(ttl * 1000))]
        if nx:
            args.append("NX")
        return await self._command("set", name, self.node_of(key), *args) is not None

    async def delete(self, key: Key) -> None:
        name = key_name(key)
        await self._command("delete", name, self.node_of(key), "DEL", name)

    async def incr(self, key: Key, amount: int = 1) -> int:
        """INCRBY (`amount=0` reads the counter)."""
        name = key_name(key)
        return int(await self._command("incr", name, self.node_of(key), "INCRBY", name, amount))

    async def set_if_equal(
        self, key: Key, value: Versioned, ttl: float | None, check: Key, expected: Versioned
    ) -> bool:
        """Atomically (one Lua script): if `check` holds `expected`, set `key` and delete
        `check`. Both keys must live on one node, as in Redis Cluster (use a hash tag)."""
        node = self.node_of(key)
        if self.node_of(check) != node:
            raise ValueError(f"{key!r} and {check!r} live on different nodes; use a hash tag")
        px = max(1, round(ttl * 1000)) if ttl is not None else 0
        name = key_name(key)
        args = [SET_IF_EQUAL, 2, name, key_name(check), encode(value), encode(expected), px]
        return bool(await self._command("set_if_equal", name, node, "EVAL", *args))

    async def delete_if_equal(self, key: Key, expected: Versioned) -> bool:
        """Atomically (one Lua script): delete `key` if it holds `expected`."""
        name = key_name(key)
        args = [DELETE_IF_EQUAL, 1, name, encode(expected)]
        return bool(await self._command("delete_if_equal", name, self.node_of(key), "EVAL", *args))

    async def connect(self, per_node: int) -> None:
        """Open `per_node` connections to every node now, so that the run does not pay
        for connecting and their memory is there from the start."""
        taken = [
            (node, await node.acquire())
            for node in self.nodes
            for _ in range(min(per_node, node.size))
        ]
        short = [(conn.socket_connect_timeout, conn.socket_timeout) for _, conn in taken]
        for _, conn in taken:  # setting up is not the run: no client timeout for it,
            # neither to connect nor to read the handshake's replies (through a fault
            # proxy on a loaded machine, 64 handshakes may take longer than the timeout)
            conn.socket_connect_timeout = max(conn.socket_connect_timeout or 0.0, SETUP_TIMEOUT)
            conn.socket_timeout = max(conn.socket_timeout or 0.0, SETUP_TIMEOUT)
        try:
            await asyncio.gather(*(conn.connect() for _, conn in taken))  # type: ignore[no-untyped-call]
        except UNAVAILABLE as exc:
            raise CacheUnavailable(f"connect: {exc}") from exc
        finally:
            for (node, conn), (connect_timeout, timeout) in zip(taken, short, strict=True):
                conn.socket_connect_timeout, conn.socket_timeout = connect_timeout, timeout
                node.release(conn)

    async def touch_all(self, reply_size: int = 0) -> None:
        """The commands of a run (`TOUCH`), then `warm`, on every open connection: what a
        server allocates for a connection on its first commands and does not count as the
        client's (~380 B per connection on its first SET with a TTL, on Redis 7.0) is
        there before the run, not counted as data."""
        for command in TOUCH:
            await asyncio.gather(*(node.warm(command) for node in list(self.nodes)))
        await self._warm_all(reply_size)

    async def _warm_all(self, reply_size: int) -> None:
        command: tuple[Any, ...] = ("ECHO", b"x" * min(reply_size, WARM_REPLY_MAX))
        await asyncio.gather(*(node.warm(command) for node in list(self.nodes)))

    async def keep_warm(self, reply_size: int = 0, every: float = WARM_EVERY) -> None:
        """Keep every node's idle connections warm until cancelled: every `every` seconds
        an ECHO of `reply_size` bytes (at most WARM_REPLY_MAX) on each, so the server keeps
        its query buffer (Redis 7.0 frees it after 2 s idle) and a reply buffer a value's
        reply fits in (servers shrink it to 1 KiB when a connection's replies are small;
        a 1 KiB value's reply then takes a 16 KiB block while it waits to be written: 16
        KiB counted against maxmemory per connection at once)."""
        while True:
            await asyncio.sleep(every)
            await self._warm_all(reply_size)

    async def close(self) -> None:
        """Close every connection (call before the event loop ends)."""
        if self._refreshing is not None:
            self._refreshing.cancel()
            with contextlib.suppress(asyncio.CancelledError, *UNAVAILABLE, ResponseError):
                await self._refreshing
        for node in [*self.nodes, *self._retired, *self._spares.values()]:
            await node.close()
