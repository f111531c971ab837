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
a worker thread and the event loop keeps serving requests meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from lab.aio import AsyncioRuntime
from lab.backend import FaultHandlers
from lab.netfault import FaultProxy
from lab.origins import RealOrigin
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

Action = Callable[[], Awaitable[None]]


@dataclass
class RedisFaults:
    """What the real fault handlers act on, and the log of what they did when."""

    deployment: Deployment
    origin: RealOrigin
    rt: AsyncioRuntime
    reconfigure: Callable[[int], None]
    """Re-applies the eviction settings to node i (after a restart or a promotion)."""
    bus: RedisBus
    seed: int
    proxy: FaultProxy | None = None
    proxied: dict[int, int] = field(default_factory=dict)
    """Node -> its index in the proxy (nodes named by latency and partition faults)."""
    bus_via: int | None = None
    """Index in the proxy of the bus subscriber's connection (bus_delay)."""
    log: list[tuple[float, str]] = field(default_factory=list)

    def threaded(self, what: str, fn: Callable[[], None]) -> Action:
        """An action that blocks (fork, control commands): run in a worker thread."""

        async def action() -> None:
            self.log.append((self.rt.now(), what))
            await asyncio.to_thread(fn)

        return action

    def awaited(self, what: str, fn: Callable[[], Awaitable[None]]) -> Action:
        async def action() -> None:
            self.log.append((self.rt.now(), what))
            await fn()

        return action

    def inline(self, what: str, fn: Callable[[], None]) -> Action:
        async def action() -> None:
            self.log.append((self.rt.now(), what))
            fn()

        return action

    def via_proxy(self, node: int) -> tuple[FaultProxy, int]:
        assert self.proxy is not None, "network faults need the fault proxy"
        return self.proxy, self.proxied[node]


FAULTS: FaultHandlers[RedisFaults, Action] = FaultHandlers("redis")
"""The redis backend's fault kinds (every kind of `lab.scenario.Fault`)."""


class FaultSchedule:
    """Fires each fault's start and end at its time on the run's clock, in order."""

    def __init__(self, faults: Sequence[Fault], context: RedisFaults) -> None:
        self.context = context
        self.events: list[tuple[float, int, Action]] = []
        for order, fault in enumerate(faults):
            begin, end = FAULTS.actions(context, fault, order)
            self.events.append((fault.at, 2 * order, begin))
            self.events.append((fault.at + fault.duration, 2 * order + 1, end))
        self.events.sort(key=lambda e: (e[0], e[1]))

    @property
    def log(self) -> list[tuple[float, str]]:
        return self.context.log

    async def run(self) -> None:
        """Spawn this on the run's runtime: it sleeps until each event, then fires it."""
        rt = self.context.rt
        for at, _, action in self.events:
            delay = at - rt.now()
            if delay > 0:
                await rt.sleep(delay)
            await action()


# -- nodes -----------------------------------------------------------------------------


def _own_servers_only(fault: Fault, target: Target | None) -> str | None:
    if target is not None:
        return f"{fault.kind} needs servers the lab started: it cannot restart others'"
    return None


@FAULTS.handles(NodeCrash, refuse=_own_servers_only)
def _crash(ctx: RedisFaults, fault: NodeCrash, index: int) -> tuple[Action, Action]:
    node, deployment = fault.node, ctx.deployment

    def restart() -> None:
        deployment.server(node).restart()
        ctx.reconfigure(node)  # CONFIG SET settings do not survive a restart

    return (
        ctx.threaded(f"crash node {node}", lambda: deployment.server(node).kill()),
        ctx.threaded(f"restart node {node}", restart),
    )


@FAULTS.handles(Failover)
def _failover(ctx: RedisFaults, fault: Failover, index: int) -> tuple[Action, Action]:
    node, deployment = fault.node, ctx.deployment

    def promote() -> None:
        deployment.failover(node)
        ctx.reconfigure(node)

    if not deployment.owned:
        return _client_pause(ctx, fault, "fail (paused)", "failed over", then=promote)
    return (
        ctx.threaded(f"primary of node {node} dies", lambda: deployment.server(node).kill()),
        ctx.threaded(f"replica of node {node} takes over", promote),
    )


@FAULTS.handles(NodePause)
def _pause(ctx: RedisFaults, fault: NodePause, index: int) -> tuple[Action, Action]:
    node, deployment = fault.node, ctx.deployment
    if not deployment.owned:
        return _client_pause(ctx, fault, "pause", "resumes")
    return (
        ctx.threaded(f"pause node {node}", lambda: deployment.server(node).pause()),
        ctx.threaded(f"resume node {node}", lambda: deployment.server(node).resume()),
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


# -- the network, through the fault proxy -----------------------------------------------


@FAULTS.handles(Latency)
def _latency(ctx: RedisFaults, fault: Latency, index: int) -> tuple[Action, Action]:
    node, (proxy, at) = fault.node, ctx.via_proxy(fault.node)
    add, stream = fault.add, f"fault.{index}"
    return (
        ctx.inline(
            f"latency to node {node}",
            lambda: proxy.add_latency(at, add, seed=ctx.seed, stream=stream),
        ),
        ctx.inline(f"node {node} healed", lambda: proxy.heal(at)),
    )


@FAULTS.handles(Partition)
def _partition(ctx: RedisFaults, fault: Partition, index: int) -> tuple[Action, Action]:
    node, mode, (proxy, at) = fault.node, fault.mode, ctx.via_proxy(fault.node)
    return (
        ctx.inline(f"partition node {node} ({mode})", lambda: proxy.partition(at, mode)),
        ctx.inline(f"node {node} healed", lambda: proxy.heal(at)),
    )


@FAULTS.handles(BusDelay)
def _bus_delay(ctx: RedisFaults, fault: BusDelay, index: int) -> tuple[Action, Action]:
    assert ctx.proxy is not None and ctx.bus_via is not None, "bus_delay needs the proxy"
    proxy, at = ctx.proxy, ctx.bus_via
    add, stream = fault.add, f"fault.{index}"
    return (
        ctx.inline(
            "bus delays messages",
            lambda: proxy.add_latency(at, add, seed=ctx.seed, stream=stream, direction="down"),
        ),
        ctx.inline("bus recovers", lambda: proxy.heal(at)),
    )


@FAULTS.handles(BusLoss)
def _bus_loss(ctx: RedisFaults, fault: BusLoss, index: int) -> tuple[Action, Action]:
    return (
        ctx.awaited("bus subscribers disconnected", ctx.bus.start_losing),
        ctx.awaited("bus subscribers back", ctx.bus.recover),
    )


# -- the origin (emulated, as the simulator models it) ----------------------------------


@FAULTS.handles(OriginSlow)
def _origin_slow(ctx: RedisFaults, fault: OriginSlow, index: int) -> tuple[Action, Action]:
    factor, origin = fault.factor, ctx.origin
    return (
        ctx.inline(f"origin x{factor:g} slower", lambda: origin.slow(factor)),
        ctx.inline("origin recovers", origin.recover),
    )


@FAULTS.handles(OriginDown)
def _origin_down(ctx: RedisFaults, fault: OriginDown, index: int) -> tuple[Action, Action]:
    return (
        ctx.inline("origin down", ctx.origin.go_down),
        ctx.inline("origin recovers", ctx.origin.recover),
    )
