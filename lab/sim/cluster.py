"""Simulated cache nodes reached over a simulated network.

A node is a single-threaded server: each operation occupies it for a sampled
service time, queued behind earlier ones ("busy until" bookkeeping, one SimPy
timeout per operation instead of a Resource's request/release events). The
client pays half an RTT each way, sampled per operation.

Linearization point: an operation takes effect on the store when it is
invoked and its reply arrives after the modelled delay. A linearizable store
may take effect at any point inside the operation's interval, and one
client connection is FIFO, so this is faithful to a single Redis node; what
it leaves out is reordering of requests from different clients by network
jitter, which is documented in docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Generator
from types import coroutine
from typing import Any

import simpy
from simpy.events import Event

from lab.core import Key, Versioned
from lab.sampling import Sampler
from lab.sharding import Sharding, key_name, owner_table, router
from lab.sim.bridge import wake_after
from lab.sim.store import Eviction, Store, make_store


class SimNode:
    """One cache server: a store plus the time until which it is busy."""

    __slots__ = ("alive", "busy_until", "index", "ops", "service", "store")

    def __init__(self, index: int, store: Store, service: Sampler) -> None:
        self.index = index
        self.store = store
        self.service = service
        self.busy_until = 0.0
        self.ops = 0
        self.alive = True

    def delay(self, now: float, rtt: float) -> float:
        """Time from invocation to reply: half RTT, queueing, service, half RTT."""
        half = rtt * 0.5
        arrive = now + half
        busy = self.busy_until
        done = (arrive if arrive > busy else busy) + self.service()
        self.busy_until = done
        self.ops += 1
        return done + half - now


class SimCluster:
    """The distributed cache as clients see it: sharded nodes behind a network (a Cache)."""

    def __init__(
        self,
        env: simpy.Environment,
        *,
        nodes: int,
        capacity: int | None,
        eviction: Eviction,
        sharding: Sharding,
        keys: int = 0,
        rtt: Sampler,
        service: Sampler,
        seed: int = 0,
    ) -> None:
        self.env = env
        self.nodes = [
            SimNode(i, make_store(capacity, eviction, seed + i), service) for i in range(nodes)
        ]
        self._rtt = rtt
        self._route_name = router(sharding, nodes)
        self._owner_of_int: list[int] = owner_table(sharding, nodes, keys) if keys else []
        self._owner_of_str: dict[str, int] = {}

    def owner(self, key: Key) -> int:
        """Index of the node holding `key` (int keys from a precomputed table)."""
        if type(key) is int and 0 <= key < len(self._owner_of_int):
            return self._owner_of_int[key]
        name = key_name(key)
        owner = self._owner_of_str.get(name)
        if owner is None:
            owner = self._owner_of_str[name] = self._route_name(name)
        return owner

    def node_of(self, key: Key) -> SimNode:
        return self.nodes[self.owner(key)]

    def _node(self, key: Key) -> SimNode:
        try:
            return self.nodes[self._owner_of_int[key]]  # type: ignore[index]
        except (IndexError, TypeError):
            return self.nodes[self.owner(key)]

    @coroutine
    def get(self, key: Key) -> Generator[Event, Any, Versioned | None]:
        env = self.env
        now = env._now
        try:
            node = self.nodes[self._owner_of_int[key]]  # type: ignore[index]
        except (IndexError, TypeError):
            node = self.nodes[self.owner(key)]
        value = node.store.get(key, now)
        # node.delay(), inlined on the hottest path
        half = self._rtt() * 0.5
        arrive = now + half
        busy = node.busy_until
        done = (arrive if arrive > busy else busy) + node.service()
        node.busy_until = done
        node.ops += 1
        yield wake_after(env, done + half - now)
        return value

    @coroutine
    def set(
        self, key: Key, value: Versioned, ttl: float | None = None, nx: bool = False
    ) -> Generator[Event, Any, bool]:
        env = self.env
        now = env._now
        node = self._node(key)
        store = node.store
        stored = not (nx and store.contains(key, now))
        if stored:
            store.set(key, value, ttl, now)
        yield wake_after(env, node.delay(now, self._rtt()))
        return stored

    @coroutine
    def delete(self, key: Key) -> Generator[Event, Any, None]:
        env = self.env
        now = env._now
        node = self._node(key)
        node.store.delete(key)
        yield wake_after(env, node.delay(now, self._rtt()))

    @coroutine
    def set_if_equal(
        self, key: Key, value: Versioned, ttl: float | None, check: Key, expected: Versioned
    ) -> Generator[Event, Any, bool]:
        """Both keys must live on one node (as in Redis Cluster, with a {hash tag})."""
        env = self.env
        now = env._now
        node = self._node(key)
        if self._node(check) is not node:
            raise ValueError(f"{key!r} and {check!r} live on different nodes; use a hash tag")
        store = node.store
        ok = store.get(check, now) == expected
        if ok:
            store.set(key, value, ttl, now)
            store.delete(check)
        yield wake_after(env, node.delay(now, self._rtt()))
        return ok

    @coroutine
    def incr(self, key: Key, amount: int = 1) -> Generator[Event, Any, int]:
        """A counter lives in the store like any key (so it can be evicted, as in Redis)."""
        env = self.env
        now = env._now
        node = self._node(key)
        current = node.store.get(key, now)
        value = (current.version if current is not None else 0) + amount
        node.store.set(key, Versioned(value, 8), None, now)
        yield wake_after(env, node.delay(now, self._rtt()))
        return value

    def orphaned_versioned_keys(self) -> tuple[int, int]:
        """(keys, bytes) cached under an older namespace version than the current one."""
        now = self.env._now
        current: dict[str, int] = {}
        for node in self.nodes:
            for key in node.store.key_list():
                if isinstance(key, str) and key.endswith(":version"):
                    value = node.store.get(key, now)
                    if value is not None:
                        current[key[: -len(":version")]] = value.version
        keys = size = 0
        for node in self.nodes:
            for key in node.store.key_list():
                if not isinstance(key, str) or ":v" not in key:
                    continue
                namespace, _, rest = key.partition(":v")
                version = rest.partition(":")[0]
                if version.isdigit() and int(version) < current.get(namespace, 0):
                    value = node.store.get(key, now)
                    if value is not None:
                        keys += 1
                        size += value.size
        return keys, size

    @property
    def evictions(self) -> int:
        return sum(n.store.evictions for n in self.nodes)

    @property
    def size(self) -> int:
        return sum(len(n.store) for n in self.nodes)
