"""Scheduled faults on real servers: the scenario's `faults`, at wall-clock times, one
handler per fault kind.

Real process faults on servers the lab started: `node_crash` (SIGKILL, then a
cold restart on the same port after `duration`), `node_pause` (SIGSTOP, then
SIGCONT: clients time out, data survives) and `failover` (the primary is
SIGKILLed; after `duration` its replica takes over with CLUSTER FAILOVER
TAKEOVER, holding whatever had been replicated). On someone else's servers
(only with --allow-destructive) a pause is `CLIENT PAUSE ... ALL` and a
failover is that pause followed by `CLUSTER FAILOVER FORCE` on a replica;
a crash is refused (the lab cannot restart someone else's server).
`bus_loss` is real too (the server drops the subscribers, see
`lab.redis.bus`). `latency`, `partition` and `bus_delay` are real network
behaviour through the fault proxy (`lab.netfault`) that sits in front of
the nodes they name (bus_delay: in front of the bus subscriber, delaying what
the server sends it). Emulated, as the simulator models them: `origin_slow`
and `origin_down` (the origin's latency emulation).

Process and control operations block (fork, waiting for PING), so they run in
a worker thread and the event loop keeps serving requests meanwhile. The
handlers any real backend shares live with what they act on:
`lab.aio.faults` (process crash and pause), `lab.netfault.faults` (latency,
partition, bus_delay), `lab.origins.faults` (origin_slow, origin_down).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from lab.aio import faults as process
from lab.aio.faults import Action, ScheduledFaults
from lab.backend import FaultHandlers
from lab.netfault import FaultProxy
from lab.netfault import faults as network
from lab.netfault.faults import Placement
from lab.origins import RealOrigin
from lab.origins import faults as origin
from lab.redis.bus import RedisBus
from lab.redis.deployment import Deployment, Target
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


@dataclass
class RedisFaults(ScheduledFaults):
    """What the real fault handlers act on (and the log of what they did when)."""

    deployment: Deployment
    origin: RealOrigin
    reconfigure: Callable[[int], None]
    """Re-applies the eviction settings to node i (after a restart or a promotion)."""
    bus: RedisBus
    seed: int
    proxy: FaultProxy | None = None
    placement: Placement = field(default_factory=Placement)

    @property
    def servers(self) -> Deployment:
        return self.deployment

    def restarted(self, index: int) -> None:
        self.reconfigure(index)  # CONFIG SET settings do not survive a restart


FAULTS: FaultHandlers[RedisFaults, Action] = FaultHandlers("redis")
"""The redis backend's fault kinds (every kind of `lab.scenario.Fault`)."""

FAULTS.handles(Latency)(network.latency)
FAULTS.handles(Partition)(network.partition)
FAULTS.handles(BusDelay)(network.bus_delay)
FAULTS.handles(OriginSlow)(origin.origin_slow)
FAULTS.handles(OriginDown)(origin.origin_down)


def _own_servers_only(fault: Fault, target: Target | None) -> str | None:
    if target is not None:
        return f"{fault.kind} needs servers the lab started: it cannot restart others'"
    return None


FAULTS.handles(NodeCrash, refuse=_own_servers_only)(process.crash)


@FAULTS.handles(NodePause)
def _pause(ctx: RedisFaults, fault: NodePause, index: int) -> tuple[Action, Action]:
    if not ctx.deployment.owned:
        return _client_pause(ctx, fault, "pause", "resumes")
    return process.pause(ctx, fault, index)


@FAULTS.handles(Failover)
def _failover(ctx: RedisFaults, fault: Failover, index: int) -> tuple[Action, Action]:
    """The primary dies; after `duration` its replica takes over (TAKEOVER on the lab's
    cluster, FORCE after a CLIENT PAUSE on someone else's)."""
    node, deployment = fault.node, ctx.deployment

    def promote() -> None:
        deployment.failover(node)
        ctx.reconfigure(node)

    if not deployment.owned:
        return _client_pause(ctx, fault, "fail (paused)", "failed over", then=promote)
    return (
        ctx.threaded(f"primary of node {node} dies", lambda: deployment.server(node).kill()),
        ctx.threaded(
            f"replica of node {node} takes over", promote, f"node {node} {process.SERVES_AGAIN}"
        ),
    )


def _client_pause(
    ctx: RedisFaults,
    fault: NodePause | Failover,
    doing: str,
    done: str,
    then: Callable[[], None] | None = None,
) -> tuple[Action, Action]:
    """On someone else's servers (--allow-destructive): CLIENT PAUSE for the window,
    then `then` (a failover: CLUSTER FAILOVER FORCE on a replica)."""
    node, deployment = fault.node, ctx.deployment
    # CLIENT PAUSE blocks every later command, CLIENT UNPAUSE included: the pause is
    # given its exact length up front
    pause_ms = max(1, round(fault.duration * 1000))

    def client_pause() -> None:
        deployment.suspended.add(node)  # from now on the gauges leave it alone
        control = deployment.control(node)
        try:
            control.execute_command("CLIENT", "PAUSE", pause_ms, "ALL")  # type: ignore[no-untyped-call]
        finally:
            control.close()

    def after_pause() -> None:
        deployment.suspended.discard(node)
        if then is not None:
            then()

    return (
        ctx.threaded(f"{doing} node {node}", client_pause),
        ctx.threaded(f"node {node} {done}", after_pause),
    )


@FAULTS.handles(BusLoss)
def _bus_loss(ctx: RedisFaults, fault: BusLoss, index: int) -> tuple[Action, Action]:
    """The server drops the subscribers (CLIENT KILL); they come back after the window."""
    return (
        ctx.awaited("bus subscribers disconnected", ctx.bus.start_losing),
        ctx.awaited("bus subscribers back", ctx.bus.recover),
    )
