"""Failure injection on the simulator: each fault of a scenario starts at `at` and
ends `duration` later, by changing the state the cluster, origin and bus consult
(lab/sim/cluster.py documents what a faulty node does to a request)."""

from __future__ import annotations

from collections.abc import Callable

import simpy

from lab.sampling import rng_for, sampler
from lab.scenario import (
    BusDelay,
    BusLoss,
    Failover,
    Fault,
    Latency,
    NodeCrash,
    NodePause,
    OriginDown,
    OriginSlow,
    Partition,
)
from lab.sim.bridge import wake_after
from lab.sim.bus import SimBus
from lab.sim.cluster import SimCluster, SimNode
from lab.sim.origin import SimOrigin


def _at(env: simpy.Environment, t: float, action: Callable[[], None]) -> None:
    """Run `action` when simulated time reaches `t`."""
    wake_after(env, max(t - float(env.now), 0.0)).callbacks.append(lambda _event: action())


def _refresh(node: SimNode, now: float) -> None:
    """Keep the cheap no-fault path for nodes with nothing active."""
    node.faulty = (
        node.refuse_until > now
        or node.hang_until > now
        or node.paused_until > now
        or node.extra is not None
    )


def _node_fault(
    env: simpy.Environment, cluster: SimCluster, fault: Fault, index: int, seed: int
) -> None:
    node = cluster.nodes[getattr(fault, "node", 0)]
    end = fault.at + fault.duration

    def begin() -> None:
        if isinstance(fault, NodeCrash):
            node.generation += 1  # replication in flight to the old store never lands
            node.store = cluster.fresh_store(node)  # all data gone: it restarts cold
            if node.replica is not None:
                node.replica = cluster.fresh_store(node)
            node.refuse_until = end
        elif isinstance(fault, Failover):
            node.generation += 1  # writes not yet replicated never reach the replica
            promoted, node.replica = node.replica, None
            assert promoted is not None  # the scenario validator requires replicas
            node.refuse_until = end

            def promote() -> None:
                node.store = promoted

            _at(env, end, promote)
        elif isinstance(fault, NodePause):
            node.paused_until = end
        elif isinstance(fault, Partition):
            if fault.mode == "hang":
                node.hang_until = end
            else:
                node.refuse_until = end
        elif isinstance(fault, Latency):
            node.extra = sampler(fault.add, rng_for(seed, f"fault.{index}"))
        _refresh(node, float(env.now))

    def finish() -> None:
        if isinstance(fault, Latency):
            node.extra = None
        _refresh(node, float(env.now))

    _at(env, fault.at, begin)
    _at(env, end, finish)


def schedule_faults(
    env: simpy.Environment,
    faults: list[Fault],
    cluster: SimCluster,
    origin: SimOrigin,
    bus: SimBus,
    seed: int,
) -> None:
    """Arm every fault; nothing happens until simulated time reaches it."""
    for index, fault in enumerate(faults):
        end = fault.at + fault.duration
        if isinstance(fault, NodeCrash | NodePause | Latency | Partition | Failover):
            _node_fault(env, cluster, fault, index, seed)
        elif isinstance(fault, OriginSlow):
            factor = fault.factor
            _at(env, fault.at, lambda factor=factor: origin.slow(factor))  # type: ignore[misc]
            _at(env, end, origin.recover)
        elif isinstance(fault, OriginDown):
            _at(env, fault.at, origin.go_down)
            _at(env, end, origin.recover)
        elif isinstance(fault, BusLoss):
            _at(env, fault.at, bus.start_losing)
            _at(env, end, bus.recover)
        elif isinstance(fault, BusDelay):
            extra = sampler(fault.add, rng_for(seed, f"fault.{index}"))
            _at(env, fault.at, lambda extra=extra: bus.start_delaying(extra))  # type: ignore[misc]
            _at(env, end, bus.recover)
