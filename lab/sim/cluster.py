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

from collections.abc import Callable, Generator
from types import coroutine
from typing import Any, cast

import simpy
from simpy.events import Event

from lab.core import Key, Versioned
from lab.core.errors import CacheRefused, CacheUnavailable
from lab.metrics.ops import OpLatencies
from lab.sampling import Sampler
from lab.scenario import MemcachedSpec
from lab.sharding import UNKNOWN, Sharding, key_name, lazy_owner_table
from lab.sim.bridge import Wait, wake_after
from lab.sim.eviction import RedisStore, make_store
from lab.sim.expiry import HZ
from lab.sim.memory import RedisMemory, encoded_length
from lab.sim.replies import Passes, reply_held
from lab.sim.slab_store import SlabStore
from lab.sim.store import Eviction, Store

NAME_MEMO = 1 << 20
"""Most key names whose owner a cluster remembers (lock, lease and versioned keys)."""


class SimNode:
    """One cache server: a store, the time until which it is busy, and its fault state."""

    __slots__ = (
        "busy_until",
        "extra",
        "faulty",
        "generation",
        "hang_until",
        "index",
        "ops",
        "passes",
        "paused_until",
        "refuse_until",
        "replica",
        "service",
        "store",
    )

    def __init__(self, index: int, store: Store, service: Sampler) -> None:
        self.index = index
        self.store = store
        self.service = service
        self.busy_until = 0.0
        self.ops = 0
        # fault state, changed only through the methods below (lab/sim/faults.py calls
        # them); `faulty` keeps the no-fault path cheap
        self.faulty = False
        self.refuse_until = 0.0  # crashed, failing over or partitioned (refuse)
        self.hang_until = 0.0  # partitioned (hang): requests get no answer
        self.paused_until = 0.0  # SIGSTOPped: requests wait, then are served
        self.extra: Sampler | None = None  # added latency
        self.replica: Store | None = None
        self.generation = 0  # bumped when the store is replaced (crash, failover)
        self.passes: Passes | None = None
        """Event-loop passes, when replies in flight are modelled (`lab/sim/replies.py`):
        such a node always takes the slow path (`faulty`)."""

    # -- faults --------------------------------------------------------------------

    def crash(self, until: float, now: float, fresh: Callable[[], Store]) -> None:
        """Dies with its data and refuses clients until `until`; it restarts empty (a
        replica resyncs empty too). Replication in flight to the old store never lands."""
        self.generation += 1
        self.store = fresh()
        if self.replica is not None:
            self.replica = fresh()
        self.refuse_until = until
        self.settle(now)

    def fail_over(self, until: float, now: float) -> Store:
        """The primary dies; clients are refused until `until`. Returns the replica that
        takes over then (`take_over`), with whatever had been replicated."""
        self.generation += 1  # writes not yet replicated never reach the replica
        promoted, self.replica = self.replica, None
        assert promoted is not None  # the scenario validator requires replicas
        self.refuse_until = until
        self.settle(now)
        return promoted

    def take_over(self, promoted: Store) -> None:
        """The promoted replica serves from now on."""
        self.store = promoted

    def pause(self, until: float, now: float) -> None:
        """SIGSTOPped: requests wait until `until`, then are served (data intact)."""
        self.paused_until = until
        self.settle(now)

    def partition(self, mode: str, until: float, now: float) -> None:
        """Unreachable until `until`: `hang` (no answer) or `refuse` (refused at once)."""
        if mode == "hang":
            self.hang_until = until
        else:
            self.refuse_until = until
        self.settle(now)

    def slow_down(self, extra: Sampler | None, now: float) -> None:
        """Add a sampled delay each way (None: no more added latency)."""
        self.extra = extra
        self.settle(now)

    def settle(self, now: float) -> None:
        """Recompute `faulty`: a node with nothing active takes the cheap path again."""
        self.faulty = (
            self.passes is not None
            or self.refuse_until > now
            or self.hang_until > now
            or self.paused_until > now
            or self.extra is not None
        )

    def delay(self, now: float, rtt: float) -> float:
        """Time from invocation to reply: half RTT, queueing, service, half RTT."""
        half = rtt * 0.5
        arrive = now + half
        busy = self.busy_until
        if self.faulty:
            if self.paused_until > busy:
                busy = self.paused_until
            if self.extra is not None:
                half += self.extra() * 0.5
                arrive = now + half
        if self.passes is not None:
            self.passes.enter(arrive, busy)
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
        memcached: MemcachedSpec | None = None,
        sharding: Sharding,
        keys: int = 0,
        rtt: Sampler,
        service: Sampler,
        seed: int = 0,
        timeout: float = 0.1,
        replicas: int = 0,
        replication_lag: Sampler | None = None,
        budget: int | None = None,
        memory: RedisMemory | None = None,
    ) -> None:
        self.env = env
        self.timeout = timeout
        self._replication_lag: Sampler = replication_lag or (lambda: 0.001)
        self._capacity, self._eviction, self._seed = capacity, eviction, seed
        self._budget, self._memory = budget, memory
        self._memcached = memcached
        self.nodes = [SimNode(i, self._store(seed + i), service) for i in range(nodes)]
        if replicas:
            for node in self.nodes:
                node.replica = self._store(seed + 1000 + node.index)
        self.never_refuses = type(self.nodes[0].store) is Store
        """The exact stores never refuse a write (only Redis's policies can): strategies
        call `set` without a wrapper that catches CacheRefused."""
        if isinstance(self.nodes[0].store, RedisStore):  # Redis's cron: active expiry
            wake_after(env, 1.0 / HZ).callbacks.append(self._cron)
            if budget is not None and memory is not None and memory.counts_replies:
                for node in self.nodes:  # replies in flight count against the budget
                    node.passes = Passes()
                    node.settle(0.0)
        self._rtt = rtt
        self.op_times = OpLatencies()
        """Every operation's time; the runner resets it at the end of the warm-up."""
        self._op_add = self.op_times.add
        self._owners = lazy_owner_table(sharding, nodes, keys)
        self._memo = self._owners.memo  # int keys' owners, filled lazily (UNKNOWN until then)
        self._route_name = self._owners.route
        self._owner_of_name: dict[str, int] = {}

    def _node(self, key: Key) -> SimNode:
        """The node holding `key`: the one lookup every operation makes. Int keys come from
        the shared lazily filled table; names (lock and lease keys, versioned keys, int
        keys past the table) are routed once and remembered."""
        try:
            owner = self._memo[key]  # type: ignore[index]
        except (IndexError, TypeError):
            return self.nodes[self._owner_by_name(key)]
        if owner == UNKNOWN:
            owner = self._owners.owner(key)  # type: ignore[arg-type]
        return self.nodes[owner]

    def _owner_by_name(self, key: Key) -> int:
        name = key_name(key)
        owner = self._owner_of_name.get(name)
        if owner is None:
            if len(self._owner_of_name) >= NAME_MEMO:
                self._owner_of_name.clear()  # a bounded memo: a huge keyspace never fills memory
            owner = self._owner_of_name[name] = self._route_name(name)
        return owner

    def _blocked(self, node: SimNode, now: float) -> tuple[float, str] | None:
        """How long until a client learns the node is unreachable, and why; None if it is."""
        if node.refuse_until > now:
            return self._rtt(), f"node {node.index}: connection refused"
        if node.hang_until > now:
            return self.timeout, f"node {node.index}: timed out (no answer)"
        return None

    def _replicate(self, node: SimNode, now: float, apply: Callable[[Store], object]) -> None:
        """Apply a mutation to the node's replica after a sampled replication lag."""
        replica, generation = node.replica, node.generation
        assert replica is not None

        def later(_: Event) -> None:
            if node.generation == generation and node.replica is replica:
                _applied(apply, replica)  # a write a full replica refuses is dropped

        wake_after(self.env, self._replication_lag()).callbacks.append(later)

    @coroutine
    def get(self, key: Key) -> Generator[Wait, Any, Versioned | None]:
        env = self.env
        now = env._now
        try:  # self._node(key), inlined for int keys on the hottest path
            owner = self._memo[key]  # type: ignore[index]
        except (IndexError, TypeError):
            owner = self._owner_by_name(key)
        if owner == UNKNOWN:
            owner = self._owners.owner(key)  # type: ignore[arg-type]
        node = self.nodes[owner]
        if node.faulty:
            found: Versioned | None = yield from self._faulty(
                node, now, lambda store: store.get(key, now)
            )
            return found
        store = node.store
        if store.__class__ is Store:  # Store.get, inlined for the exact stores
            entry = store._data.get(key)
            if entry is None:
                value = None
            elif entry[1] <= now:
                store._expire(key)
                value = None
            else:
                if store._touch:
                    store._data.move_to_end(key)
                value = entry[0]
        else:
            value = store.get(key, now)
        # node.delay(), inlined on the hottest path
        half = self._rtt() * 0.5
        arrive = now + half
        busy = node.busy_until
        done = (arrive if arrive > busy else busy) + node.service()
        node.busy_until = done
        node.ops += 1
        took = done + half - now
        self._op_add(took)
        yield took
        return value

    def _faulty(
        self, node: SimNode, now: float, apply: Callable[[Store], Any]
    ) -> Generator[Wait, Any, Any]:
        """An operation on a node with an active fault: refused, hung, slow or paused."""
        blocked = self._blocked(node, now)
        if blocked is not None:
            yield blocked[0]
            raise CacheUnavailable(blocked[1])
        passes = node.passes
        if passes is None:
            result, refused = _applied(apply, node.store)  # it reached the server: it takes effect
            delay = node.delay(now, self._rtt())
        else:  # placed in its event-loop pass first: earlier replies of the pass count
            delay = node.delay(now, self._rtt())
            result, refused = _in_pass(apply, node.store, passes)
        if delay > self.timeout:
            yield float(self.timeout)
            raise CacheUnavailable(f"node {node.index}: timed out after {self.timeout}s")
        self._op_add(delay)
        yield delay
        if refused is not None:
            raise refused
        return result

    def _op(
        self, key: Key, mutate: Callable[[Store], Any], replicate: Callable[[Store], Any] | None
    ) -> Generator[Wait, Any, Any]:
        """Run a mutation on the key's node (and later on its replica)."""
        env = self.env
        now = env._now
        node = self._node(key)
        if node.faulty:
            result = yield from self._faulty(node, now, mutate)
        else:
            result, refused = _applied(mutate, node.store)
            took = node.delay(now, self._rtt())
            self._op_add(took)
            yield took
            if refused is not None:
                raise refused
        if node.replica is not None and replicate is not None:
            self._replicate(node, now, replicate)
        return result

    @coroutine
    def set(
        self, key: Key, value: Versioned, ttl: float | None = None, nx: bool = False
    ) -> Generator[Wait, Any, bool]:
        env = self.env
        now = env._now
        node = self._node(key)
        if not node.faulty and node.replica is None:  # the common case, without closures
            store = node.store
            done = not (nx and store.contains(key, now))
            refused = None
            if done:
                try:
                    store.set(key, value, ttl, now)
                except CacheRefused as exc:  # the reply comes back after a round trip
                    refused = exc
            took = node.delay(now, self._rtt())
            self._op_add(took)
            yield took
            if refused is not None:
                raise refused
            return done

        def mutate(store: Store) -> bool:
            if nx and store.contains(key, now):
                return False
            store.set(key, value, ttl, now)
            return True

        stored: bool = yield from self._op(key, mutate, mutate)
        return stored

    @coroutine
    def delete(self, key: Key) -> Generator[Wait, Any, None]:
        env = self.env
        node = self._node(key)
        if not node.faulty and node.replica is None:  # the common case, without closures
            node.store.delete(key)
            now = env._now
            took = node.delay(now, self._rtt())
            self._op_add(took)
            yield took
            return

        def mutate(store: Store) -> None:
            store.delete(key)

        yield from self._op(key, mutate, mutate)

    @coroutine
    def set_if_equal(
        self, key: Key, value: Versioned, ttl: float | None, check: Key, expected: Versioned
    ) -> Generator[Wait, Any, bool]:
        """Both keys must live on one node (as in Redis Cluster, with a {hash tag})."""
        if self._node(check) is not self._node(key):
            raise ValueError(f"{key!r} and {check!r} live on different nodes; use a hash tag")
        now = self.env._now

        def mutate(store: Store) -> bool:
            if store.get(check, now) != expected:
                return False
            store.set(key, value, ttl, now)
            store.delete(check)
            return True

        done: bool = yield from self._op(key, mutate, mutate)
        return done

    @coroutine
    def delete_if_equal(self, key: Key, expected: Versioned) -> Generator[Wait, Any, bool]:
        now = self.env._now

        def mutate(store: Store) -> bool:
            if store.get(key, now) != expected:
                return False
            store.delete(key)
            return True

        deleted: bool = yield from self._op(key, mutate, mutate)
        return deleted

    @coroutine
    def incr(self, key: Key, amount: int = 1) -> Generator[Wait, Any, int]:
        """A counter lives in the store like any key (so it can be evicted, as in Redis)."""
        now = self.env._now

        def mutate(store: Store) -> int:
            current = store.get(key, now)
            value = (current.version if current is not None else 0) + amount
            store.set(key, Versioned(value, 8), None, now)
            return value

        counted: int = yield from self._op(key, mutate, mutate)
        return counted

    def _cron(self, _: Event) -> None:
        """`serverCron` on every primary (`hz` times a second, for as long as the run)."""
        now = self.env._now
        for node in self.nodes:
            store = node.store
            if isinstance(store, RedisStore):
                store.cron(now)
        wake_after(self.env, 1.0 / HZ).callbacks.append(self._cron)

    @property
    def memcached(self) -> bool:
        """Nodes are memcached (`eviction: memcached-slru`)."""
        return self._eviction == "memcached-slru"

    def _store(self, seed: int) -> Store:
        if self._eviction == "memcached-slru":  # memcached's memory: lab/sim/slab_store.py
            return cast(Store, SlabStore(self._memcached, seed))
        return make_store(
            self._capacity, self._eviction, seed, budget=self._budget, memory=self._memory
        )

    def fresh_store(self, node: SimNode) -> Store:
        """An empty store like the node's (a cold restart)."""
        return self._store(self._seed + 7919 * (node.generation + 1))

    @property
    def evictions(self) -> int:
        return sum(n.store.evictions for n in self.nodes)

    @property
    def size(self) -> int:
        return sum(len(n.store) for n in self.nodes)

    @property
    def used_bytes(self) -> int:
        """Data memory the primaries hold (0 without a memory model)."""
        return sum(n.store.used_bytes for n in self.nodes)


def _in_pass(
    apply: Callable[[Store], Any], store: Store, passes: Passes
) -> tuple[Any, CacheRefused | None]:
    """Run a command with the replies its pass holds counted against the budget; a GET
    that found a value leaves its reply held until the pass ends."""
    memory = store.memory
    if memory is None:  # (a replica's store: nothing counted)
        return _applied(apply, store)
    memory.in_flight = passes.before
    try:
        result, refused = _applied(apply, store)
    finally:
        memory.in_flight = 0
    if isinstance(result, Versioned):
        passes.replied(reply_held(encoded_length(result)))
    return result, refused


def _applied(apply: Callable[[Store], Any], store: Store) -> tuple[Any, CacheRefused | None]:
    """Run a command on a store; a refused write is returned, to be raised after its
    round trip (Redis answers OOM like any reply)."""
    try:
        return apply(store), None
    except CacheRefused as exc:
        return None, exc
