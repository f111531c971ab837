"""Scheduled faults on real servers: the scenario's `faults`, at wall-clock times.

Real process faults on servers the lab started: `node_crash` (SIGKILL, then a
cold restart on the same port after `duration`), `node_pause` (SIGSTOP, then
SIGCONT: clients time out, data survives) and `failover` (the primary is
SIGKILLed; after `duration` its replica takes over with CLUSTER FAILOVER
TAKEOVER, holding whatever had been replicated). On someone else's servers
(only with --allow-destructive) a pause is `CLIENT PAUSE ... ALL` and a
failover is that pause followed by `CLUSTER FAILOVER FORCE` on a replica.
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
from collections.abc import Awaitable, Callable

from lab.aio import AsyncioRuntime
from lab.netfault import FaultProxy
from lab.origins import RealOrigin
from lab.redis.bus import RedisBus
from lab.redis.deployment import Deployment
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

SUPPORTED = (
    NodeCrash,
    NodePause,
    Failover,
    OriginSlow,
    OriginDown,
    Latency,
    Partition,
    BusLoss,
    BusDelay,
)
DESTRUCTIVE = frozenset({"node_crash", "node_pause", "failover"})
"""Faults that act on the servers themselves: refused on others' unless allowed."""


def unsupported(faults: list[Fault]) -> list[str]:
    """The kinds of `faults` this backend cannot inject (sorted, distinct)."""
    return sorted({f.kind for f in faults if not isinstance(f, SUPPORTED)})


Action = Callable[[], Awaitable[None]]


class FaultSchedule:
    """Fires each fault's start and end at its time on the run's clock."""

    def __init__(
        self,
        faults: list[Fault],
        deployment: Deployment,
        origin: RealOrigin,
        rt: AsyncioRuntime,
        reconfigure: Callable[[int], None],
        *,
        bus: RedisBus,
        seed: int,
        proxy: FaultProxy | None = None,
        proxied: dict[int, int] | None = None,
        bus_via: int | None = None,
    ) -> None:
        """`proxy` fronts the nodes named by latency and partition faults (`proxied`
        maps such a node to its index in the proxy) and, at index `bus_via`, the
        bus subscriber's connection for bus_delay faults."""
        self.rt = rt
        self.proxy = proxy
        self.proxied = proxied or {}
        self.bus_via = bus_via
        self.bus = bus
        self.seed = seed
        self.deployment = deployment
        self.log: list[tuple[float, str]] = []
        self.events: list[tuple[float, int, Action]] = []
        for order, fault in enumerate(faults):
            self._index = order
            begin, end = self._actions(fault, origin, reconfigure)
            self.events.append((fault.at, 2 * order, begin))
            self.events.append((fault.at + fault.duration, 2 * order + 1, end))
        self.events.sort(key=lambda e: (e[0], e[1]))

    def _actions(
        self,
        fault: Fault,
        origin: RealOrigin,
        reconfigure: Callable[[int], None],
    ) -> tuple[Action, Action]:
        if isinstance(fault, NodeCrash | NodePause | Failover):
            return self._node_actions(fault, reconfigure)
        if isinstance(fault, Latency | Partition):
            assert self.proxy is not None, "network faults need the fault proxy"
            proxy, at, node = self.proxy, self.proxied[fault.node], fault.node
            if isinstance(fault, Latency):
                add, stream = fault.add, f"fault.{self._index}"
                begin = self._inline(
                    f"latency to node {node}",
                    lambda: proxy.add_latency(at, add, seed=self.seed, stream=stream),
                )
            else:
                mode = fault.mode
                begin = self._inline(
                    f"partition node {node} ({mode})", lambda: proxy.partition(at, mode)
                )
            return begin, self._inline(f"node {node} healed", lambda: proxy.heal(at))
        if isinstance(fault, BusLoss):
            return self._awaited(
                "bus subscribers disconnected", self.bus.start_losing
            ), self._awaited("bus subscribers back", self.bus.recover)
        if isinstance(fault, BusDelay):
            assert self.proxy is not None and self.bus_via is not None, "needs the proxy"
            proxy, at = self.proxy, self.bus_via
            add, stream = fault.add, f"fault.{self._index}"
            return self._inline(
                "bus delays messages",
                lambda: proxy.add_latency(at, add, seed=self.seed, stream=stream, direction="down"),
            ), self._inline("bus recovers", lambda: proxy.heal(at))
        if isinstance(fault, OriginSlow):
            factor = fault.factor
            return self._inline(f"origin x{factor:g} slower", lambda: origin.slow(factor)), (
                self._inline("origin recovers", origin.recover)
            )
        assert isinstance(fault, OriginDown), f"unsupported fault {fault.kind}"
        return self._inline("origin down", origin.go_down), self._inline(
            "origin recovers", origin.recover
        )

    def _node_actions(
        self, fault: NodeCrash | NodePause | Failover, reconfigure: Callable[[int], None]
    ) -> tuple[Action, Action]:
        index, deployment = fault.node, self.deployment
        if not deployment.owned:  # someone else's servers (--allow-destructive)
            # CLIENT PAUSE blocks every later command, CLIENT UNPAUSE included: the
            # pause is given its exact length up front
            pause_ms = max(1, round(fault.duration * 1000))

            def client_pause() -> None:
                deployment.suspended.add(index)  # from now on the gauges leave it alone
                control = deployment.control(index)
                try:
                    control.execute_command("CLIENT", "PAUSE", pause_ms, "ALL")  # type: ignore[no-untyped-call]
                finally:
                    control.close()

            def after_pause() -> None:
                deployment.suspended.discard(index)
                if isinstance(fault, Failover):
                    deployment.failover(index)
                    reconfigure(index)

            what = "pause" if isinstance(fault, NodePause) else "fail (paused)"
            return self._threaded(f"{what} node {index}", client_pause), self._threaded(
                f"node {index} {'resumes' if isinstance(fault, NodePause) else 'failed over'}",
                after_pause,
            )
        if isinstance(fault, NodeCrash):

            def crash() -> None:
                deployment.server(index).kill()

            def restart() -> None:
                deployment.server(index).restart()
                reconfigure(index)  # CONFIG SET settings do not survive a restart

            return self._threaded(f"crash node {index}", crash), self._threaded(
                f"restart node {index}", restart
            )
        if isinstance(fault, Failover):

            def kill_primary() -> None:
                deployment.server(index).kill()

            def promote() -> None:
                deployment.failover(index)
                reconfigure(index)

            return self._threaded(f"primary of node {index} dies", kill_primary), (
                self._threaded(f"replica of node {index} takes over", promote)
            )
        return self._threaded(
            f"pause node {index}", lambda: deployment.server(index).pause()
        ), self._threaded(f"resume node {index}", lambda: deployment.server(index).resume())

    def _threaded(self, what: str, fn: Callable[[], None]) -> Action:
        async def action() -> None:
            self.log.append((self.rt.now(), what))
            await asyncio.to_thread(fn)

        return action

    def _awaited(self, what: str, fn: Callable[[], Awaitable[None]]) -> Action:
        async def action() -> None:
            self.log.append((self.rt.now(), what))
            await fn()

        return action

    def _inline(self, what: str, fn: Callable[[], None]) -> Action:
        async def action() -> None:
            self.log.append((self.rt.now(), what))
            fn()

        return action

    async def run(self) -> None:
        """Spawn this on the run's runtime: it sleeps until each event, then fires it."""
        for at, _, action in self.events:
            delay = at - self.rt.now()
            if delay > 0:
                await self.rt.sleep(delay)
            await action()
