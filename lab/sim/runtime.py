"""The Runtime on SimPy: virtual time, spawned coroutines and queues."""

from __future__ import annotations

import gc
import heapq
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from functools import partial
from types import coroutine
from typing import Any

import simpy
from simpy.events import NORMAL, Event

from lab.sim.bridge import Driver


class SimQueue:
    """Unbounded FIFO; `get` waits for an item. Getters are served in arrival order."""

    def __init__(self, env: simpy.Environment) -> None:
        self._env = env
        self._items: deque[Any] = deque()
        self._getters: deque[Event] = deque()

    def put(self, item: Any) -> None:
        if self._getters:
            self._getters.popleft().succeed(item)
        else:
            self._items.append(item)

    @coroutine
    def get(self) -> Generator[Event, Any, Any]:
        if self._items:
            return self._items.popleft()
        waiter = Event(self._env)
        self._getters.append(waiter)
        return (yield waiter)

    def __len__(self) -> int:
        return len(self._items)


class SimRuntime:
    """Runtime backed by a SimPy environment; time is simulated seconds."""

    now: Callable[[], float]
    """Current simulated time (a C-level getter: it is called several times per request)."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.now = partial(getattr, env, "_now")

    @coroutine
    def sleep(self, seconds: float) -> Generator[float, Any, None]:
        """What `simpy.Timeout` does (same order), as a bare delay the driver queues."""
        if seconds < 0:
            raise ValueError(f"Negative delay {seconds}")
        yield float(seconds)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        Driver(self.env, coro)

    def queue(self) -> SimQueue:
        return SimQueue(self.env)

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run the simulation until `coro` returns; return its result.

        The loop is `Environment.step` inlined (same queue, same order, same
        crash on an undefused failed event), saving a call per event.
        """
        env = self.env
        done = Event(env)

        async def main() -> None:
            done.succeed(await coro)

        Driver(env, main())
        queue = env._queue
        pop = heapq.heappop
        # A run allocates millions of short-lived objects and keeps a large, long-lived
        # heap (rows, versions, cache entries): CPython's default thresholds would scan
        # that heap over and over. Collect less often for the run's duration.
        thresholds = gc.get_threshold()
        gc.set_threshold(50_000, 50, 100)
        try:
            self._loop(done, queue, pop)
        finally:
            gc.set_threshold(*thresholds)
        return done.value

    def _loop(self, done: Event, queue: list[Any], pop: Callable[..., Any]) -> None:
        """Environment.step, inlined, until `done` has been processed (its callback ends
        the loop: no check per event). A popped driver (a coroutine that slept on a float
        delay) is resumed right here: `Driver.woken` and the float case of `Driver.park`,
        inlined, as most events are these."""
        env = self.env
        eid = env._eid
        push = heapq.heappush
        driver = Driver
        assert done.callbacks is not None
        done.callbacks.append(_finish)
        try:
            while True:
                try:
                    now, _, _, event = pop(queue)
                except IndexError:
                    raise RuntimeError(
                        "simulation ran out of events before the workload finished"
                    ) from None
                env._now = now
                if event.__class__ is driver:
                    try:
                        following = event.coro.send(None)
                    except StopIteration:
                        continue
                    if following.__class__ is float:
                        push(queue, (now + following, NORMAL, next(eid), event))
                    else:
                        event.park(following)
                    continue
                callbacks, event.callbacks = event.callbacks, None
                for callback in callbacks:
                    callback(event)
                if not event._ok and not hasattr(event, "_defused"):
                    raise event._value
        except _Finished:
            return


class _Finished(Exception):
    """Raised by the run's `done` event to leave the loop."""


def _finish(_event: Event) -> None:
    raise _Finished
