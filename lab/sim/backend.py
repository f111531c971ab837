"""The sim backend: a cell on the SimPy simulated cluster. Deterministic for a seed.

Every random stream is derived from the seed and a stable purpose name
(`lab.sampling.rng_for`), so the strategies of a scenario see the same
network, service and origin times (common random numbers).

`SimBackend(draw=k)` re-draws the simulator's own randomness (the cache network and
service times, replication lag, the bus, the nodes' eviction and expiry sampling)
and keeps the seed's request stream, origin latencies, faults and strategies' draws:
what a real run of the same seed draws too. The fidelity grid judges a real run
against the mean over several draws (`cachelab fidelity --sim-draws`): on one draw,
a 4-seed stale-read ratio still varies by 0.12-0.17 point from the draw alone.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any, ClassVar, TypeVar

import simpy

from lab.backend import Backend, FaultHandlers, FinalState, NodeKeys, Parts
from lab.core import Versioned
from lab.core.capabilities import Capability
from lab.sampling import rng_for, sampler
from lab.scenario import Cell, Fault, Scenario
from lab.sim.bus import SimBus
from lab.sim.cluster import SimCluster, SimNode
from lab.sim.faults import FAULTS, SimFaults, schedule_faults
from lab.sim.memory import RedisMemory, SizeTally
from lab.sim.origin import SimOrigin
from lab.sim.runtime import SimRuntime
from lab.sim.valkey_memory import ValkeyMemory
from lab.workload.values import run_value_size, value_sizes

T = TypeVar("T")

OWN_SEED_STRIDE = 1_000_003
"""Between the node seeds of two draws (a cluster numbers its nodes' stores from its
seed: +i, +1000+i for replicas, +7919 per restart)."""


class SimBackend:
    """The SimPy simulated cluster (`lab.backend.Backend`)."""

    name: ClassVar[str] = "sim"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.TTL,
            Capability.NX,
            Capability.INCR,
            Capability.SET_IF_EQUAL,
            Capability.PUBSUB,
        }
    )
    faults: ClassVar[FaultHandlers[SimFaults, Callable[[], None]]] = FAULTS

    def __init__(self, draw: int = 0) -> None:
        self.env = simpy.Environment()
        self.draw = draw
        """Which set of the simulator's own random draws (0: the seed's; see above)."""
        self.seed = 0
        self.value_size = 0
        self.memory: RedisMemory | None = None
        self.cluster: SimCluster | None = None
        self.origin: SimOrigin | None = None
        self.bus: SimBus | None = None

    @classmethod
    def describe(cls) -> str:
        return "SimPy simulated cluster (always available)"

    def refusal(self, scenario: Scenario, cell: Cell) -> str | None:
        return self.faults.refusal(scenario.faults)

    def execute(
        self, scenario: Scenario, cell: Cell, body: Callable[[Parts], Coroutine[Any, Any, T]]
    ) -> T:
        """Build the simulated parts and run `body`: its awaits complete at once here
        (only `run` advances simulated time), so it is driven without an event loop."""
        return _drive(body(self._parts(scenario, cell)))

    def _parts(self, scenario: Scenario, cell: Cell) -> Parts:
        env, seed, topo = self.env, cell.seed, scenario.topology
        self.seed, self.value_size = seed, value_sizes(scenario.keyspace, seed).typical
        self.memory = memory_model(scenario)
        draw = self.draw
        own_seed = seed + OWN_SEED_STRIDE * draw  # the nodes' and the bus's own sampling
        cluster = self.cluster = SimCluster(
            env,
            nodes=topo.nodes,
            capacity=topo.capacity_keys,
            eviction=topo.eviction,
            memcached=topo.memcached,
            sharding=topo.sharding,
            keys=scenario.keyspace.keys,
            rtt=sampler(topo.network.rtt, rng_for(seed, "network.rtt", draw)),
            service=sampler(topo.service_time, rng_for(seed, "node.service", draw)),
            seed=own_seed,
            timeout=scenario.strategies[cell.strategy].client.timeout,
            replicas=topo.replicas,
            replication_lag=sampler(topo.replication_lag, rng_for(seed, "node.replication", draw)),
            budget=topo.capacity_bytes,
            memory=self.memory,
        )
        spec = scenario.origin
        origin = self.origin = SimOrigin(
            env,
            value_size=run_value_size(scenario.keyspace, seed),
            read_latency=sampler(spec.read_latency, rng_for(seed, "origin.read")),
            write_latency=sampler(spec.write_latency, rng_for(seed, "origin.write")),
            concurrency=spec.concurrency,
            rtt=sampler(topo.network.rtt, rng_for(seed, "origin.network")),
        )
        bus = self.bus = SimBus(
            env,
            rtt=sampler(topo.network.rtt, rng_for(seed, "bus.network", draw)),
            delay=sampler(topo.bus.delay, rng_for(seed, "bus.delay", draw)),
            loss=topo.bus.loss,
            seed=own_seed,
        )
        return Parts(SimRuntime(env), cluster, origin, bus, self._gauges)

    def _gauges(self) -> dict[str, float]:
        cluster = self._cluster
        cluster.op_times.fold()
        keys = cluster.size
        return {
            "evictions": cluster.evictions,
            "cache_keys": keys,
            "cache_memory": self._memory_held(keys),
        }

    def _memory_held(self, keys: int) -> int:
        """Data memory as the model counts it; without one (every value one size, the
        capacity in keys) the values' payload, keys x value_size; memcached-slru counts
        item bytes as memcached does."""
        if self.memory is None and not self._cluster.memcached:
            return keys * self.value_size
        return self._cluster.used_bytes

    @property
    def _cluster(self) -> SimCluster:
        assert self.cluster is not None, "execute() builds the cluster first"
        return self.cluster

    def schedule_faults(self, parts: Parts, faults: Sequence[Fault]) -> None:
        assert self.origin is not None and self.bus is not None
        context = SimFaults(self.env, self._cluster, self.origin, self.bus, self.seed)
        schedule_faults(context, faults)

    async def run(self, parts: Parts, workload: Coroutine[Any, Any, None]) -> None:
        runtime = parts.runtime
        assert isinstance(runtime, SimRuntime)
        runtime.run(workload)

    def warmup_over(self, parts: Parts) -> int:
        cluster = self._cluster
        cluster.op_times.reset()  # operations so far belong to the warm-up
        for node in cluster.nodes:
            node.store.evicted = SizeTally()
        return cluster.evictions

    async def final_state(self, parts: Parts) -> FinalState:
        cluster, origin = self._cluster, self.origin
        assert origin is not None
        keys = cluster.size
        fields: dict[str, Any] = dict(cluster.op_times.summary())
        fields["simulated_time"] = float(self.env.now)
        if self.memory is not None:
            fields.update(memory_fields(self.memory, cluster))
        return FinalState(
            evictions=cluster.evictions,
            cache_keys=keys,
            cache_memory=self._memory_held(keys),
            origin_versions=origin.versions(),
            fields=fields,
        )

    async def inventory(self, parts: Parts) -> list[NodeKeys]:
        now = float(self.env.now)
        return [_node_keys(node, now) for node in self._cluster.nodes]


def memory_fields(model: RedisMemory, cluster: SimCluster) -> dict[str, Any]:
    """How memory was counted, and which values were evicted (after the warm-up) and
    held (at the end), by value size."""
    evicted = SizeTally()
    held_bytes = held = 0
    for node in cluster.nodes:
        evicted.merge(node.store.evicted)
        for value in node.store.values():
            held_bytes += value.size
            held += 1
    evictions = sum(evicted.counts)
    return {
        "memory_accounting": model.name,
        "evictions_by_size": evicted.as_dict(),
        "evicted_value_size_mean": evicted.bytes / evictions if evictions else None,
        "held_value_size_mean": held_bytes / held if held else None,
    }


def memory_model(scenario: Scenario) -> RedisMemory | None:
    """How the simulator counts bytes: Redis 7.0's formula (Valkey 9's with
    `topology.memory_model: valkey9`) when the capacity is in bytes or values differ in
    size (then `cache_memory` means something); None otherwise."""
    topo = scenario.topology
    if topo.capacity_bytes is None and isinstance(scenario.keyspace.value_size, int):
        return None
    if topo.memory_model == "valkey9":
        return ValkeyMemory(cluster=topo.sharding == "slots")
    return RedisMemory(cluster=topo.sharding == "slots")


def _node_keys(node: SimNode, now: float) -> NodeKeys:
    store = node.store

    async def read(names: list[str]) -> list[Versioned | None]:
        return [store.get(name, now) for name in names]

    return NodeKeys([key for key in store.key_list() if isinstance(key, str)], read)


def _drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (the sim's `execute` body) to its result."""
    try:
        coro.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coro.close()
    raise RuntimeError("a simulated cell's body awaited something outside the simulation")


_CONFORMS: type[Backend] = SimBackend
"""mypy checks here that the class implements the protocol."""
