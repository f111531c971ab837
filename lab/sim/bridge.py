"""The trampoline that runs `async def` strategy code on SimPy.

A strategy coroutine awaits backend operations; in the simulator those are
generator-based awaitables that yield either a SimPy event or, for the
simulator's own delays, a plain float: "wake me this many seconds from now".
`Driver` sends each outcome back into the coroutine (or throws an event's
exception in). It is a callback, not a SimPy Process: one less event and
generator per request.

A float delay costs no event object at all: the driver puts *itself* on
SimPy's queue, with the same priority and tie-break counter a `simpy.Timeout`
created at that moment would get, so the order of processing is identical
(tested). `SimRuntime`'s loop recognises a popped driver and resumes its
coroutine inline; SimPy's own `Environment.step` also works, through the
driver's `callbacks`.

Awaiting anything else (an asyncio future, say) is a bug in strategy code,
and fails the run at once with a TypeError.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Coroutine, Generator
from heapq import heappush
from typing import Any

from simpy.core import Environment
from simpy.events import NORMAL, Event

Wait = Event | float
"""What simulated code yields to the driver: an event to wait for, or a delay in seconds."""

_NOT_AN_EVENT = (
    "simulated code awaited {!r}, which is not a SimPy event; strategy code must only "
    "await the Runtime, Cache, Origin and Bus it was given"
)


class Driver:
    """Drives one coroutine from SimPy's queue until it returns.

    While its coroutine sleeps on a float delay, the driver itself is the
    queued item (it quacks as a processed-on-pop SimPy event: `callbacks`,
    `_ok`). An exception escaping the coroutine propagates out of the run: a
    spawned task that fails crashes the simulation loudly instead of dying
    silently.
    """

    __slots__ = ("_eid", "_env", "_queue", "callbacks", "coro")

    _ok = True  # as a queued item, the driver never fails (SimPy's step checks this)
    _value = None

    def __init__(self, env: Environment, coro: Coroutine[Any, Any, Any]) -> None:
        self.coro = coro
        self._env = env
        self._queue: list[Any] = env._queue
        self._eid = env._eid
        self.callbacks: list[Callable[[Driver], None]] | None = None
        try:
            following = coro.send(None)
        except StopIteration:
            return
        self.park(following)

    def woken(self) -> None:
        """The driver's own wake-up came off the queue (SimPy's step calls this, as
        `callback(event)` with the driver as the event; the runtime's loop inlines it)."""
        try:
            following = self.coro.send(None)
        except StopIteration:
            return
        self.park(following)

    def _resume(self, event: Event) -> None:
        """A SimPy event the coroutine awaited was processed."""
        try:
            if event._ok:
                following = self.coro.send(event._value)
            else:
                event._defused = True
                following = self.coro.throw(event._value)
        except StopIteration:
            return
        self.park(following)

    def park(self, following: Any) -> None:
        """Wait for what the coroutine yielded: a delay or a SimPy event. An event that
        was already processed continues the coroutine at once with its outcome."""
        coro = self.coro
        while True:
            if following.__class__ is float:
                self.callbacks = _ARMED  # shared, never mutated: no cycle, no allocation
                env = self._env
                heappush(self._queue, (env._now + following, NORMAL, next(self._eid), self))
                return
            callbacks = getattr(following, "callbacks", None)
            if callbacks is not None:
                callbacks.append(self._resume)
                return
            if isinstance(following, (int, float)) and not isinstance(following, bool):
                following = float(following)
                continue
            if not isinstance(following, Event):
                coro.close()
                raise TypeError(_NOT_AN_EVENT.format(following))
            try:
                if following._ok:
                    following = coro.send(following._value)
                else:
                    following._defused = True
                    following = coro.throw(following._value)
            except StopIteration:
                return


_ARMED: list[Callable[[Driver], None]] = [Driver.woken]
"""The `callbacks` of a queued driver: SimPy's step calls `Driver.woken(driver)`."""


def wake_after(env: Environment, delay: float) -> Event:
    """An event processed `delay` from now: what `simpy.Timeout(env, delay)` does, with
    SimPy's own priority and tie-break counter, minus two Python calls (for callbacks
    such as fault actions and replication; coroutines `yield delay` instead)."""
    event = _WAKE_NEW(_Wake)
    event.env = env
    event.callbacks = []
    event._value = None
    event._ok = True
    heappush(env._queue, (env._now + delay, NORMAL, next(env._eid), event))
    return event


class _Wake(Event):
    """A timeout built by `wake_after` (a distinct type only to name it in traces)."""


_WAKE_NEW = object.__new__


@types.coroutine
def wait(event: Event) -> Generator[Event, Any, Any]:
    """Await a SimPy event from `async def` code (the one primitive the sim needs)."""
    return (yield event)


@types.coroutine
def delay(seconds: float) -> Generator[float, Any, None]:
    """Await `seconds` of simulated time (no event object: the driver queues itself)."""
    yield seconds
