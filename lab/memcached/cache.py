"""The Cache protocol on memcached: emcache per node, ketama across nodes, add and cas.

Keys are routed with `lab.sharding.router` (libketama's continuum, as
libmemcached and pymemcache's HashClient do), the function the simulator
uses, so a key lives on the same node index on every backend; each node has
its own emcache client (emcache's own rendezvous hashing is not used).

The operations as memcached users build them:
- `set` is SET, `set(..., nx=True)` is ADD; TTLs go through `lab.exptime`
  (whole seconds, rounded up; the 30-day rule);
- `incr` is INCR, creating an absent counter with ADD (memcached's INCR
  refuses a missing key);
- `delete_if_equal` (a lock's safe release) is GETS, then CAS with an
  exptime of -1: the item is replaced by an already expired one only if
  nobody changed it since;
- leases (Facebook's memcache paper) live in the item itself: `lease:{name}`
  is not a key of its own but a placeholder ADDed at `name` (what a miss
  leaves for the others to see), filled only by CAS from the lease's holder,
  and revoked by the write path's DELETE of `name`. `set_if_equal` accepts
  exactly that case: memcached has no atomic operation over two keys.

Connection failures and timeouts become `CacheUnavailable`, as a client sees them.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from time import perf_counter
from typing import Any, TypeVar

import emcache
from emcache import MemcachedHostAddress

from lab.codec import decode, encode
from lab.core import Key, Versioned
from lab.core.errors import CacheUnavailable
from lab.exptime import exptime
from lab.metrics.ops import OpLatencies
from lab.sharding import Sharding, key_name, lazy_owner_table, router

Address = tuple[str, int]
T = TypeVar("T")

UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
    emcache.ClusterNoAvailableNodes,
)
"""The node could not serve the command (unreachable, too slow)."""
LEASE = re.compile(r"^lease:\{(.+)\}$")
PLACEHOLDER = b"LEASE:"
"""A lease's placeholder value: `LEASE:<token version>` stored at the key itself."""
INF = float("inf")


def _lease_of(name: str) -> str | None:
    match = LEASE.match(name)
    return match.group(1) if match else None


class MemcachedCache:
    """A ketama-sharded memcached cache (`Cache` protocol) plus `touch`."""

    def __init__(
        self,
        addresses: Sequence[Address],
        *,
        sharding: Sharding = "ketama",
        keys: int = 0,
        timeout: float = 1.0,
        max_connections: int = 64,
    ) -> None:
        if not addresses:
            raise ValueError("a MemcachedCache needs at least one server")
        self.addresses = list(addresses)
        self.timeout = timeout
        self.max_connections = max_connections
        self.clients: list[Any] = []
        self.op_times = OpLatencies()
        self.measure_after = INF
        self._route = router(sharding, len(self.addresses))
        self._owner_of_int = lazy_owner_table(sharding, len(self.addresses), keys)

    async def connect(self, per_node: int, *, check: bool = True) -> None:
        """One emcache client per node, `per_node` connections opened now; with `check`,
        every node must answer (VERSION) before the run."""
        per_node = max(1, min(per_node, self.max_connections))
        try:
            for host, port in self.addresses:
                client = await emcache.create_client(
                    [MemcachedHostAddress(host, port)],
                    timeout=self.timeout,
                    max_connections=self.max_connections,
                    min_connections=per_node,
                    purge_unused_connections_after=None,
                    connection_timeout=max(self.timeout, 5.0),
                    purge_unhealthy_nodes=False,
                    autobatching=False,
                )
                self.clients.append(client)
            if not check:
                return
            await asyncio.gather(  # reachable now, not at the first request
                *(
                    c.version(MemcachedHostAddress(*a))
                    for c, a in zip(self.clients, self.addresses, strict=True)
                )
            )
        except UNAVAILABLE as exc:
            raise CacheUnavailable(f"connect: {exc}") from exc

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
        self.clients.clear()

    def measure_ops_after(self, instant: float) -> None:
        """Count operation times from this `time.perf_counter` instant on."""
        self.measure_after = instant

    def node_of(self, key: Key) -> int:
        try:
            return self._owner_of_int[key]  # type: ignore[index]
        except (IndexError, TypeError):
            return self._route(key_name(key))

    def _client(self, key: Key | str) -> Any:
        return self.clients[self.node_of(key)]

    async def _op(self, what: str, name: str, call: Awaitable[T]) -> T:
        """One command; failures a client sees in production become CacheUnavailable."""
        start = perf_counter()
        try:
            result = await call
        except UNAVAILABLE as exc:
            raise CacheUnavailable(f"{what} {name}: {exc!r}") from exc
        if start >= self.measure_after:
            self.op_times.add(perf_counter() - start)
        return result

    # -- the Cache protocol ----------------------------------------------------

    async def get(self, key: Key) -> Versioned | None:
        name = key_name(key)
        held = _lease_of(name)
        if held is not None:
            item = await self._op("gets", name, self._client(held).gets(held.encode()))
            raw = None if item is None else item.value
            if raw is None or not raw.startswith(PLACEHOLDER):
                return None
            return Versioned(int(raw[len(PLACEHOLDER) :]), 1)
        item = await self._op("get", name, self._client(key).get(name.encode()))
        if item is None or item.value.startswith(PLACEHOLDER):
            return None  # a lease placeholder: a miss (someone is loading it)
        return decode(item.value)

    async def set(
        self, key: Key, value: Versioned, ttl: float | None = None, nx: bool = False
    ) -> bool:
        name = key_name(key)
        held = _lease_of(name)
        if held is not None:  # taking a lease: a placeholder where the value goes
            raw, name, client = PLACEHOLDER + b"%d" % value.version, held, self._client(held)
        else:
            raw, client = encode(value), self._client(key)
        expiry = exptime(ttl, time.time())
        if not nx:
            await self._op("set", name, client.set(name.encode(), raw, exptime=expiry))
            return True
        try:
            await self._op("add", name, client.add(name.encode(), raw, exptime=expiry))
        except emcache.NotStoredStorageCommandError:
            return False
        return True

    async def delete(self, key: Key) -> None:
        name = key_name(key)
        held = _lease_of(name)
        if held is not None:  # revoke: kill the placeholder, never a value
            await self._kill_if(held, lambda raw: raw.startswith(PLACEHOLDER))
            return
        with contextlib.suppress(emcache.NotFoundCommandError):
            await self._op("delete", name, self._client(key).delete(name.encode()))

    async def touch(self, key: Key, ttl: float | None) -> bool:
        """memcached TOUCH: a new TTL for a live item; False if absent."""
        name = key_name(key)
        call = self._client(key).touch(name.encode(), exptime(ttl, time.time()))
        try:
            await self._op("touch", name, call)
        except emcache.NotFoundCommandError:
            return False
        return True

    async def incr(self, key: Key, amount: int = 1) -> int:
        """INCR (DECR for a negative amount: memcached counters stop at 0); an absent
        counter is created with ADD; `amount=0` reads it."""
        name, client = key_name(key), self._client(key)
        if amount == 0:
            value = await self.get(key)
            return 0 if value is None else value.version
        while True:
            try:
                if amount > 0:
                    call = client.increment(name.encode(), amount)
                else:
                    call = client.decrement(name.encode(), -amount)
                return int(await self._op("incr", name, call))
            except emcache.NotFoundCommandError:
                pass
            try:
                await self._op("add", name, client.add(name.encode(), b"%d" % max(amount, 0)))
                return max(amount, 0)
            except emcache.NotStoredStorageCommandError:
                continue  # someone created it meanwhile: increment theirs

    async def set_if_equal(
        self, key: Key, value: Versioned, ttl: float | None, check: Key, expected: Versioned
    ) -> bool:
        """Fill `key` only if its lease `check` (`lease:{key}`) still holds `expected`:
        GETS the placeholder, CAS the value over it (a write's DELETE in between makes
        the CAS fail: the lease was revoked)."""
        name = key_name(key)
        if _lease_of(key_name(check)) != name:
            raise ValueError(
                f"memcached: set_if_equal checks the lease of the key itself "
                f"(lease:{{{name}}}), not {key_name(check)!r}: no atomic operation spans keys"
            )
        wanted = PLACEHOLDER + b"%d" % expected.version
        return await self._cas_if(
            name, lambda raw: raw == wanted, encode(value), exptime(ttl, time.time())
        )

    async def delete_if_equal(self, key: Key, expected: Versioned) -> bool:
        """GETS, then CAS an already expired item over it if it still holds `expected`."""
        wanted = encode(expected)
        return await self._kill_if(key_name(key), lambda raw: raw == wanted)

    async def _kill_if(self, name: str, holds: Callable[[bytes], bool]) -> bool:
        return await self._cas_if(name, holds, b"", -1)

    async def _cas_if(
        self, name: str, holds: Callable[[bytes], bool], raw: bytes, expiry: int
    ) -> bool:
        client = self._client(name)
        item = await self._op("gets", name, client.gets(name.encode()))
        if item is None or not holds(item.value):
            return False
        try:
            await self._op("cas", name, client.cas(name.encode(), raw, item.cas, exptime=expiry))
        except emcache.StorageCommandError:  # EXISTS or NOT_FOUND: changed meanwhile
            return False
        return True
