"""The Runtime contract on SimPy and on asyncio: time, spawn, queues, loud failures."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import simpy

from lab.aio import AsyncioRuntime
from lab.core import Runtime
from lab.sim.runtime import SimRuntime

Body = Callable[[Runtime], Coroutine[Any, Any, Any]]


def run_sim(body: Body) -> Any:
    rt = SimRuntime(simpy.Environment())
    return rt.run(body(rt))


def run_asyncio(body: Body) -> Any:
    rt = AsyncioRuntime()
    return rt.run(body(rt))


@pytest.fixture(params=["sim", "asyncio"])
def run(request: pytest.FixtureRequest) -> Callable[[Body], Any]:
    return run_sim if request.param == "sim" else run_asyncio


class Boom(Exception):
    pass


def test_now_starts_near_zero_and_sleep_advances_it(run: Callable[[Body], Any]) -> None:
    async def body(rt: Runtime) -> tuple[float, float]:
        t0 = rt.now()
        await rt.sleep(0.03)
        return t0, rt.now()

    t0, t1 = run(body)
    assert 0 <= t0 < 0.05
    assert 0.03 - 1e-9 <= t1 - t0 < 0.5


def test_queue_is_fifo_and_get_waits(run: Callable[[Body], Any]) -> None:
    async def body(rt: Runtime) -> list[int]:
        q = rt.queue()
        got: list[int] = []

        async def consumer() -> None:
            for _ in range(3):
                got.append(await q.get())

        rt.spawn(consumer())
        await rt.sleep(0.01)
        for i in (1, 2, 3):
            q.put(i)
        q.put(4)
        await rt.sleep(0.01)
        assert len(q) == 1
        return got

    assert run(body) == [1, 2, 3]


def test_spawned_tasks_run_concurrently(run: Callable[[Body], Any]) -> None:
    async def body(rt: Runtime) -> float:
        done = rt.queue()

        async def worker() -> None:
            await rt.sleep(0.05)
            done.put(None)

        start = rt.now()
        for _ in range(10):
            rt.spawn(worker())
        for _ in range(10):
            await done.get()
        return rt.now() - start

    assert run(body) < 0.2  # not 10 x 0.05


def test_a_failing_spawned_task_fails_the_run(run: Callable[[Body], Any]) -> None:
    async def body(rt: Runtime) -> None:
        async def broken() -> None:
            await rt.sleep(0.01)
            raise Boom("spawned task failed")

        rt.spawn(broken())
        await rt.sleep(1.0)
        pytest.fail("the run went on after a spawned task failed")

    with pytest.raises(Boom, match="spawned task failed"):
        run(body)


def test_asyncio_runtime_times_out_and_cancels_leftovers() -> None:
    rt = AsyncioRuntime()
    cancelled: list[bool] = []

    async def sleeper() -> None:
        try:
            await rt.sleep(10)
        except BaseException:
            cancelled.append(True)
            raise

    async def body() -> None:
        rt.spawn(sleeper())
        await rt.sleep(10)

    with pytest.raises(TimeoutError):
        rt.run(body(), timeout=0.05)
    assert cancelled == [True] and rt.pending == 0


def test_a_real_run_can_start_where_an_event_loop_already_runs() -> None:
    """As in a Jupyter cell: run_bounded moves the run to a thread of its own."""
    from lab.aio import run_bounded

    async def inner() -> int:
        await asyncio.sleep(0.01)
        return 7

    async def cell() -> int:
        return run_bounded(inner())

    assert asyncio.run(cell()) == 7
