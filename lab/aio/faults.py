"""Faults on a real backend's clock: actions logged with their time, fired in order.

A real backend's fault handlers return (begin, end) `Action`s built with a
`ScheduledFaults` context: `threaded` for what blocks (a fork, a control
command: the event loop keeps serving requests meanwhile), `awaited` for a
coroutine, `inline` for what returns at once. A `FaultSchedule` sleeps until
each action's time and fires it; actions run one after the other, so a
fault's end never overtakes its begin.

The process faults every backend with its own server processes shares are
here too: `crash` (SIGKILL, then a cold restart on the same port) and
`pause` (SIGSTOP, then SIGCONT), on any `lab.processes.ChildServer`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from lab.aio.runtime import AsyncioRuntime
from lab.processes.server import ChildServer
from lab.scenario import Fault, NodeCrash, NodePause

Action = Callable[[], Awaitable[None]]
SERVES_AGAIN = "serves again"
"""The note when a node a fault took down answers again (restarted, or failed over)."""
C = TypeVar("C")


@dataclass
class ScheduledFaults:
    """What a real backend's fault handlers need from the run: its clock and a log."""

    rt: AsyncioRuntime
    log: list[tuple[float, str]] = field(default_factory=list, kw_only=True)
    """(time, what happened), for the run's notes."""

    def threaded(self, what: str, fn: Callable[[], None], done: str | None = None) -> Action:
        """An action that blocks (fork, control commands): run in a worker thread; `done`
        is logged when it has finished (a restart takes wall time: the node is back
        then, not at the fault's end)."""

        def call() -> float:
            fn()
            return self.rt.now()  # when it was done, not when a busy loop got to it

        async def action() -> None:
            self.log.append((self.rt.now(), what))
            finished = await asyncio.to_thread(call)
            if done is not None:
                self.log.append((finished, done))

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


class FaultSchedule(Generic[C]):
    """Fires each fault's start and end at its time on the run's clock, in order."""

    def __init__(
        self,
        faults: Sequence[Fault],
        context: C,
        actions: Callable[[C, Fault, int], tuple[Action, Action]],
    ) -> None:
        """`actions` is the backend's handler registry (`FaultHandlers.actions`)."""
        self.events: list[tuple[float, int, Action]] = []
        for order, fault in enumerate(faults):
            begin, end = actions(context, fault, order)
            self.events.append((fault.at, 2 * order, begin))
            self.events.append((fault.at + fault.duration, 2 * order + 1, end))
        self.events.sort(key=lambda e: (e[0], e[1]))

    async def run(self, rt: AsyncioRuntime) -> None:
        """Spawn this on the run's runtime: it sleeps until each event, then fires it."""
        for at, _, action in self.events:
            delay = at - rt.now()
            if delay > 0:
                await rt.sleep(delay)
            await action()


class Servers(Protocol):
    """Node i's server process (the backend's deployment of servers it started)."""

    def server(self, index: int) -> ChildServer: ...


class ProcessFaults(Protocol):
    """What `crash` and `pause` act on."""

    @property
    def servers(self) -> Servers: ...

    def restarted(self, index: int) -> None:
        """Node `index` came back (a restart): re-apply what does not survive one."""
        ...

    def threaded(self, what: str, fn: Callable[[], None], done: str | None = None) -> Action: ...


def crash(ctx: ProcessFaults, fault: NodeCrash, index: int) -> tuple[Action, Action]:
    """SIGKILL (the data is gone), then a cold restart on the same port after the window."""
    node, servers = fault.node, ctx.servers

    def restart() -> None:
        servers.server(node).restart()
        ctx.restarted(node)

    return (
        ctx.threaded(f"crash node {node}", lambda: servers.server(node).kill()),
        ctx.threaded(f"restart node {node}", restart, f"node {node} {SERVES_AGAIN}"),
    )


def pause(ctx: ProcessFaults, fault: NodePause, index: int) -> tuple[Action, Action]:
    """SIGSTOP for the window (clients time out, data survives), then SIGCONT."""
    node, servers = fault.node, ctx.servers
    return (
        ctx.threaded(f"pause node {node}", lambda: servers.server(node).pause()),
        ctx.threaded(f"resume node {node}", lambda: servers.server(node).resume()),
    )
