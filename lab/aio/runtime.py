"""The Runtime on asyncio: wall-clock time, tasks and queues.

`now()` is the wall time in seconds since the runtime was created
(`time.perf_counter`), so run timestamps start at 0 like the simulator's.
Spawned coroutines become tasks whose references are kept (asyncio holds
tasks only weakly); the first one to fail with an exception fails the whole
run: `run()` cancels the main coroutine and re-raises that exception, as
the simulator's trampoline does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import importlib
import os
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

from lab.aio.interrupts import CancelOnSignal

T = TypeVar("T")


class AsyncioQueue:
    """Unbounded FIFO on asyncio (the Runtime's `Queue`)."""

    __slots__ = ("_queue",)

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()

    def put(self, item: Any) -> None:
        self._queue.put_nowait(item)

    def get(self) -> Coroutine[Any, Any, Any]:
        return self._queue.get()

    def __len__(self) -> int:
        return self._queue.qsize()


class AsyncioRuntime:
    """Runtime backed by the running asyncio event loop; time is wall seconds."""

    def __init__(self) -> None:
        self._t0 = time.perf_counter()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._failure: BaseException | None = None
        self._main: asyncio.Task[Any] | None = None
        self.stuck = 0
        """Tasks that did not end within the grace period after being cancelled."""

    def restart_clock(self) -> None:
        """Make `now()` 0 at this instant (call right before the workload starts)."""
        self._t0 = time.perf_counter()

    def now(self) -> float:
        return time.perf_counter() - self._t0

    def sleep(self, seconds: float) -> Coroutine[Any, Any, None]:
        return asyncio.sleep(seconds if seconds > 0 else 0)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def queue(self) -> AsyncioQueue:
        return AsyncioQueue()

    @property
    def pending(self) -> int:
        """Spawned tasks that have not finished yet."""
        return len(self._tasks)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and self._failure is None:
            self._failure = exc
            if self._main is not None and not self._main.done():
                self._main.cancel()

    async def run_async(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Await `coro` as the run's main task inside an already running loop.

        Raises the first exception of any spawned task (a bug must never die
        silently), `TimeoutError` if `timeout` seconds pass first. Tasks still
        pending afterwards are cancelled and awaited.
        """
        self._main = main = asyncio.get_running_loop().create_task(coro)
        try:
            try:
                result = await asyncio.wait_for(asyncio.shield(main), timeout)
            except asyncio.CancelledError:
                if self._failure is not None:
                    raise self._failure from None
                raise
            except TimeoutError:
                main.cancel()
                raise
            if self._failure is not None:
                raise self._failure
            return result
        finally:
            if not main.done():
                main.cancel()
            await self.cancel_pending()
            if not main.cancelled() and main.done() and main.exception() is not None:
                main.exception()  # retrieved: no "exception was never retrieved" warning
            self._main = None

    async def cancel_pending(self, timeout: float = 5.0) -> None:
        """Cancel every spawned task still running and wait (at most `timeout`) for them
        to end; tasks that ignore cancellation are counted in `stuck`, never waited on
        forever."""
        tasks = list(self._tasks)
        if self._main is not None and not self._main.done():
            tasks.append(self._main)
        for task in tasks:
            task.cancel()
        if tasks:
            _, still = await asyncio.wait(tasks, timeout=timeout)
            self.stuck += len(still)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on a new event loop and return its result."""
        return run_bounded(self.run_async(coro, timeout))


def run_bounded(coro: Coroutine[Any, Any, T], grace: float = 5.0) -> T:
    """`asyncio.run`, except that shutting down never hangs: tasks left over are
    cancelled and waited for at most `grace` seconds, then abandoned.

    Called where an event loop already runs (a Jupyter cell), the run gets a loop of
    its own in a worker thread, since two loops cannot run in one thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_here(coro, grace)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(_run_here, coro, grace).result()


@contextlib.contextmanager
def _heap_frozen() -> Iterator[None]:
    """Leave everything alive before the run (modules, pandas, the scenario) out of the
    cyclic garbage collector's passes during it. A full pass over that heap blocks the
    event loop (measured: 0.35-0.45 s beside two CPU hogs, a stall of the load
    generator that every request in flight pays); objects the run makes are still
    collected."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The standard asyncio event loop; `CACHELAB_LOOP=uvloop` picks uvloop's (C, a
    little less client CPU per request: 36 -> 30 µs per GET at 50 clients, README
    "Performance") when it is installed. Not the default: uvloop raises RuntimeError
    where asyncio ignores a write on a transport a network fault has closed, which
    redis-py does not turn into a ConnectionError (seen failing a proxy-fault run)."""
    if os.environ.get("CACHELAB_LOOP", "") == "uvloop":
        try:
            uvloop = importlib.import_module("uvloop")  # optional: not a dependency
        except ImportError:
            raise RuntimeError(
                "CACHELAB_LOOP=uvloop, but uvloop is not installed: pip install uvloop"
            ) from None
        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        return loop
    return asyncio.new_event_loop()


def _run_here(coro: Coroutine[Any, Any, T], grace: float) -> T:
    loop = new_event_loop()
    try:
        main = loop.create_task(coro)
        with CancelOnSignal(loop, main), _heap_frozen():
            return loop.run_until_complete(main)
    finally:
        try:
            left = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in left:
                task.cancel()
            if left:
                loop.run_until_complete(asyncio.wait(left, timeout=grace))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
