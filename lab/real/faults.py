"""Scheduled faults on real servers: the scenario's `faults`, at wall-clock times.

Real process faults: `node_crash` (SIGKILL, then a cold restart on the same
port after `duration`) and `node_pause` (SIGSTOP, then SIGCONT: clients time
out, data survives). Emulated, as the simulator models them: `origin_slow`
and `origin_down` (the origin's latency emulation), `latency` and
`partition` (in the cache client: no TCP proxy yet), `bus_loss` and
`bus_delay` (in the pub/sub bus). `failover` needs a replicated topology
and is reported as not supported, so such cells are skipped with the reason.

Process operations block (fork, waiting for PING), so they run in a worker
thread and the event loop keeps serving requests meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from lab.real import servers as srv
from lab.real.bus import RedisBus
from lab.real.origin import RealOrigin
from lab.real.redis_cache import RedisCache
from lab.real.runtime import AsyncioRuntime
from lab.sampling import rng_for, sampler
from lab.scenario import (
    BusDelay,
    BusLoss,
    Fault,
    Latency,
    NodeCrash,
    NodePause,
    OriginDown,
    OriginSlow,
    Partition,
)

SUPPORTED = (NodeCrash, NodePause, OriginSlow, OriginDown, Latency, Partition, BusLoss, BusDelay)


def unsupported(faults: list[Fault]) -> list[str]:
    """The kinds of `faults` this backend cannot inject (sorted, distinct)."""
    return sorted({f.kind for f in faults if not isinstance(f, SUPPORTED)})


Action = Callable[[], Awaitable[None]]


class FaultSchedule:
    """Fires each fault's start and end at its time on the run's clock."""

    def __init__(
        self,
        faults: list[Fault],
        shards: srv.ServerGroup,
        origin: RealOrigin,
        rt: AsyncioRuntime,
        reconfigure: Callable[[int], None],
        *,
        cache: RedisCache,
        bus: RedisBus,
        seed: int,
    ) -> None:
        self.rt = rt
        self.cache = cache
        self.bus = bus
        self.seed = seed
        self.log: list[tuple[float, str]] = []
        self.events: list[tuple[float, int, Action]] = []
        for order, fault in enumerate(faults):
            self._index = order
            begin, end = self._actions(fault, shards, origin, reconfigure)
            self.events.append((fault.at, 2 * order, begin))
            self.events.append((fault.at + fault.duration, 2 * order + 1, end))
        self.events.sort(key=lambda e: (e[0], e[1]))

    def _actions(
        self,
        fault: Fault,
        shards: srv.ServerGroup,
        origin: RealOrigin,
        reconfigure: Callable[[int], None],
    ) -> tuple[Action, Action]:
        if isinstance(fault, NodeCrash | NodePause):
            index = fault.node
            server = shards[index]
            if isinstance(fault, NodeCrash):

                def restart() -> None:
                    server.restart()
                    reconfigure(index)  # CONFIG SET settings do not survive a restart

                return self._threaded(f"crash node {index}", server.kill), self._threaded(
                    f"restart node {index}", restart
                )
            return self._threaded(f"pause node {index}", server.pause), self._threaded(
                f"resume node {index}", server.resume
            )
        if isinstance(fault, Latency):
            node, extra = fault.node, self._sampler(fault)
            return self._inline(
                f"latency to node {node}", lambda: self.cache.add_latency(node, extra)
            ), self._inline(f"node {node} healed", lambda: self.cache.heal(node))
        if isinstance(fault, Partition):
            node, mode = fault.node, fault.mode
            return self._inline(
                f"partition node {node} ({mode})", lambda: self.cache.partition(node, mode)
            ), self._inline(f"node {node} healed", lambda: self.cache.heal(node))
        if isinstance(fault, BusLoss):
            return self._inline("bus loses messages", self.bus.start_losing), self._inline(
                "bus recovers", self.bus.recover
            )
        if isinstance(fault, BusDelay):
            bus_extra = self._sampler(fault)
            return self._inline(
                "bus delays messages", lambda: self.bus.start_delaying(bus_extra)
            ), self._inline("bus recovers", self.bus.recover)
        if isinstance(fault, OriginSlow):
            factor = fault.factor
            return self._inline(f"origin x{factor:g} slower", lambda: origin.slow(factor)), (
                self._inline("origin recovers", origin.recover)
            )
        assert isinstance(fault, OriginDown), f"unsupported fault {fault.kind}"
        return self._inline("origin down", origin.go_down), self._inline(
            "origin recovers", origin.recover
        )

    def _sampler(self, fault: Latency | BusDelay) -> Callable[[], float]:
        """The fault's extra delay, from the same random stream as the simulator's."""
        return sampler(fault.add, rng_for(self.seed, f"fault.{self._index}"))

    def _threaded(self, what: str, fn: Callable[[], None]) -> Action:
        async def action() -> None:
            self.log.append((self.rt.now(), what))
            await asyncio.to_thread(fn)

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
