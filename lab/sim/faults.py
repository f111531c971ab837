"""Failure injection on the simulator: one handler per fault kind.

Each fault of a scenario starts at `at` and ends `duration` later. A handler
turns a fault into its (begin, end) actions, which change the state the
cluster, origin and bus consult: a node owns its fault state (`SimNode.crash`,
`pause`, `partition`, ...; lab/sim/cluster.py documents what a faulty node
does to a request). Every action is armed before the run starts, at its exact
simulated time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import simpy

from lab.backend import FaultHandlers
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

Action = Callable[[], None]


@dataclass
class SimFaults:
    """What the simulator's fault handlers act on."""

    env: simpy.Environment
    cluster: SimCluster
    origin: SimOrigin
    bus: SimBus
    seed: int

    def now(self) -> float:
        return float(self.env.now)

    def at(self, t: float, action: Action) -> None:
        """Run `action` when simulated time reaches `t`."""
        wake_after(self.env, max(t - float(self.env.now), 0.0)).callbacks.append(
            lambda _event: action()
        )

    def node(self, fault: NodeCrash | NodePause | Latency | Partition | Failover) -> SimNode:
        return self.cluster.nodes[fault.node]


FAULTS: FaultHandlers[SimFaults, Action] = FaultHandlers("sim")
"""The simulator's fault kinds: every kind of `lab.scenario.Fault`."""


def schedule_faults(context: SimFaults, faults: Sequence[Fault]) -> None:
    """Arm every fault; nothing happens until simulated time reaches it."""
    for index, fault in enumerate(faults):
        begin, end = FAULTS.actions(context, fault, index)
        context.at(fault.at, begin)
        context.at(fault.at + fault.duration, end)


@FAULTS.handles(NodeCrash)
def _crash(ctx: SimFaults, fault: NodeCrash, index: int) -> tuple[Action, Action]:
    node, end = ctx.node(fault), fault.at + fault.duration
    return (
        lambda: node.crash(end, ctx.now(), lambda: ctx.cluster.fresh_store(node)),
        lambda: node.settle(ctx.now()),
    )


@FAULTS.handles(Failover)
def _failover(ctx: SimFaults, fault: Failover, index: int) -> tuple[Action, Action]:
    node, end = ctx.node(fault), fault.at + fault.duration

    def begin() -> None:
        promoted = node.fail_over(end, ctx.now())
        ctx.at(end, lambda: node.take_over(promoted))

    return begin, lambda: node.settle(ctx.now())


@FAULTS.handles(NodePause)
def _pause(ctx: SimFaults, fault: NodePause, index: int) -> tuple[Action, Action]:
    node, end = ctx.node(fault), fault.at + fault.duration
    return lambda: node.pause(end, ctx.now()), lambda: node.settle(ctx.now())


@FAULTS.handles(Partition)
def _partition(ctx: SimFaults, fault: Partition, index: int) -> tuple[Action, Action]:
    node, end, mode = ctx.node(fault), fault.at + fault.duration, fault.mode
    return lambda: node.partition(mode, end, ctx.now()), lambda: node.settle(ctx.now())


@FAULTS.handles(Latency)
def _latency(ctx: SimFaults, fault: Latency, index: int) -> tuple[Action, Action]:
    node = ctx.node(fault)
    return (
        lambda: node.slow_down(sampler(fault.add, rng_for(ctx.seed, f"fault.{index}")), ctx.now()),
        lambda: node.slow_down(None, ctx.now()),
    )


@FAULTS.handles(OriginSlow)
def _origin_slow(ctx: SimFaults, fault: OriginSlow, index: int) -> tuple[Action, Action]:
    factor = fault.factor
    return lambda: ctx.origin.slow(factor), ctx.origin.recover


@FAULTS.handles(OriginDown)
def _origin_down(ctx: SimFaults, fault: OriginDown, index: int) -> tuple[Action, Action]:
    return ctx.origin.go_down, ctx.origin.recover


@FAULTS.handles(BusLoss)
def _bus_loss(ctx: SimFaults, fault: BusLoss, index: int) -> tuple[Action, Action]:
    return ctx.bus.start_losing, ctx.bus.recover


@FAULTS.handles(BusDelay)
def _bus_delay(ctx: SimFaults, fault: BusDelay, index: int) -> tuple[Action, Action]:
    extra = sampler(fault.add, rng_for(ctx.seed, f"fault.{index}"))
    return lambda: ctx.bus.start_delaying(extra), ctx.bus.recover
