"""The trampoline that runs `async def` strategy code on SimPy.

A strategy coroutine awaits backend operations; in the simulator those are
generator-based awaitables that yield a SimPy event. `Driver` sends each
event's value back into the coroutine when SimPy processes the event (or
throws its exception in). It is a callback, not a SimPy Process: one less
event and generator per request, which is most of the trampoline's cost.

Awaiting anything that is not a SimPy event (an asyncio future, say) is a
bug in strategy code, and fails the run at once with a TypeError.
"""

from __future__ import annotations

import types
from collections.abc import Coroutine, Generator
from heapq import heappush as _heappush
from typing import Any

from simpy.core import Environment
from simpy.events import NORMAL, Event


class Driver:
    """Drives one coroutine from SimPy event callbacks until it returns.

    An exception escaping the coroutine propagates out of `env.run()`: a
    spawned task that fails crashes the simulation loudly instead of dying
    silently.
    """

    __slots__ = ("_coro", "_resume_cb")

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._coro = coro
        self._resume_cb = self._resume
        self._step(None, None)

    def _resume(self, event: Event) -> None:
        if event._ok:
            # the common case, inlined: send the value, park on the next event
            try:
                following = self._coro.send(event._value)
            except StopIteration:
                return
            try:
                callbacks = following.callbacks
            except AttributeError:
                callbacks = None
            if callbacks is not None:
                callbacks.append(self._resume_cb)
                return
            self._park_or_continue(following)
        else:
            event._defused = True
            self._step(None, event._value)

    def _park_or_continue(self, event: Any) -> None:
        if not isinstance(event, Event):
            self._coro.close()
            raise TypeError(
                f"simulated code awaited {event!r}, which is not a SimPy event; strategy "
                "code must only await the Runtime, Cache, Origin and Bus it was given"
            )
        if event._ok:
            self._step(event._value, None)
        else:
            event._defused = True
            self._step(None, event._value)

    def _step(self, value: Any, exc: BaseException | None) -> None:
        coro = self._coro
        while True:
            if exc is None:
                try:
                    event = coro.send(value)
                except StopIteration:
                    return
            else:
                try:
                    event = coro.throw(exc)
                except StopIteration:
                    return
            callbacks = getattr(event, "callbacks", None)
            if callbacks is not None:
                callbacks.append(self._resume_cb)
                return
            if not isinstance(event, Event):
                coro.close()
                raise TypeError(
                    f"simulated code awaited {event!r}, which is not a SimPy event; strategy "
                    "code must only await the Runtime, Cache, Origin and Bus it was given"
                )
            # The event was already processed: continue synchronously with its outcome.
            if event._ok:
                value, exc = event._value, None
            else:
                event._defused = True
                value, exc = None, event._value


def wake_after(env: Environment, delay: float) -> Event:
    """An event processed `delay` from now: what `simpy.Timeout(env, delay)` does, with
    SimPy's own priority and tie-break counter, minus two Python calls. Cache and
    origin operations create one per operation, so this is the simulator's hottest line.
    """
    event = _WAKE_NEW(_Wake)
    event.env = env
    event.callbacks = []
    event._value = None
    event._ok = True
    _heappush(env._queue, (env._now + delay, NORMAL, next(env._eid), event))
    return event


class _Wake(Event):
    """A timeout built by `wake_after` (a distinct type only to name it in traces)."""


_WAKE_NEW = object.__new__


@types.coroutine
def wait(event: Event) -> Generator[Event, Any, Any]:
    """Await a SimPy event from `async def` code (the one primitive the sim needs)."""
    return (yield event)
