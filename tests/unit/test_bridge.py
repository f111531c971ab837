"""The trampoline: async strategy code driven by SimPy events."""

from __future__ import annotations

import asyncio

import pytest
import simpy

from lab.sim.bridge import Driver, delay, wait, wake_after
from lab.sim.runtime import SimRuntime


def test_values_flow_back_into_the_coroutine_and_time_advances() -> None:
    env = simpy.Environment()
    rt = SimRuntime(env)
    log: list[tuple[float, str]] = []

    async def worker() -> str:
        log.append((rt.now(), "start"))
        got = await wait(env.timeout(1.5, value="x"))
        log.append((rt.now(), f"got {got}"))
        await rt.sleep(0.5)
        log.append((rt.now(), "slept"))
        return "done"

    assert rt.run(worker()) == "done"
    assert log == [(0.0, "start"), (1.5, "got x"), (2.0, "slept")]


def test_a_failed_event_is_thrown_into_the_coroutine() -> None:
    env = simpy.Environment()
    rt = SimRuntime(env)

    async def worker() -> str:
        event = env.event()
        event.fail(KeyError("gone"))
        try:
            await wait(event)
        except KeyError as exc:
            return f"caught {exc.args[0]}"
        return "not caught"

    assert rt.run(worker()) == "caught gone"


def test_awaiting_a_non_simpy_awaitable_fails_loudly() -> None:
    env = simpy.Environment()
    rt = SimRuntime(env)

    async def worker() -> None:
        loop = asyncio.new_event_loop()
        try:
            await loop.create_future()
        finally:
            loop.close()

    with pytest.raises(TypeError, match="not a SimPy event"):
        rt.run(worker())


def test_a_spawned_task_that_raises_crashes_the_run() -> None:
    env = simpy.Environment()
    rt = SimRuntime(env)

    async def broken() -> None:
        await rt.sleep(1)
        raise ValueError("bug in strategy code")

    async def main() -> None:
        rt.spawn(broken())
        await rt.sleep(5)

    with pytest.raises(ValueError, match="bug in strategy code"):
        rt.run(main())


def test_wake_after_orders_exactly_like_simpy_timeouts() -> None:
    """Same time: first scheduled, first processed, whichever helper created the event."""
    env = simpy.Environment()
    order: list[str] = []
    for i in range(6):
        event = wake_after(env, 1.0) if i % 2 else env.timeout(1.0)
        event.callbacks.append(lambda _e, i=i: order.append(f"e{i}"))
    env.run()
    assert order == [f"e{i}" for i in range(6)]
    assert env.now == 1.0


def test_spawned_coroutines_interleave_in_simulated_time() -> None:
    env = simpy.Environment()
    rt = SimRuntime(env)
    log: list[tuple[float, str]] = []

    async def ticker(name: str, period: float) -> None:
        for _ in range(3):
            await rt.sleep(period)
            log.append((rt.now(), name))

    async def main() -> None:
        rt.spawn(ticker("a", 1.0))
        rt.spawn(ticker("b", 1.5))
        await rt.sleep(10)

    rt.run(main())
    # at t=3 both wake; b scheduled its timeout first (at 1.5), so b runs first
    assert log == [(1.0, "a"), (1.5, "b"), (2.0, "a"), (3.0, "b"), (3.0, "a"), (4.5, "b")]


def test_queue_hands_items_to_waiting_getters_in_order() -> None:
    env = simpy.Environment()
    rt = SimRuntime(env)
    queue = rt.queue()
    got: list[tuple[float, str, int]] = []

    async def consumer(name: str) -> None:
        item = await queue.get()
        got.append((rt.now(), name, item))

    async def main() -> None:
        rt.spawn(consumer("c1"))
        rt.spawn(consumer("c2"))
        await rt.sleep(1)
        queue.put(10)
        queue.put(20)
        queue.put(30)
        await rt.sleep(1)

    rt.run(main())
    assert got == [(1.0, "c1", 10), (1.0, "c2", 20)]
    assert len(queue) == 1


def test_driver_continues_synchronously_on_an_already_processed_event() -> None:
    env = simpy.Environment()
    event = env.event()
    event.succeed(7)
    env.run()  # processes it
    seen: list[int] = []

    async def worker() -> None:
        seen.append(await wait(event))

    Driver(env, worker())
    assert seen == [7]


def test_a_float_delay_orders_exactly_like_a_simpy_timeout_created_at_that_moment() -> None:
    """A coroutine's `yield delay` queues its driver with the tie-break counter a Timeout
    would get, so at equal times the order of scheduling decides, whoever scheduled."""
    env = simpy.Environment()
    rt = SimRuntime(env)
    order: list[str] = []

    async def sleeper(name: str) -> None:
        await delay(1.0)
        order.append(name)

    async def main() -> None:
        for i in range(6):
            if i % 3 == 0:
                rt.spawn(sleeper(f"d{i}"))
            elif i % 3 == 1:
                env.timeout(1.0).callbacks.append(lambda _e, i=i: order.append(f"t{i}"))
            else:
                wake_after(env, 1.0).callbacks.append(lambda _e, i=i: order.append(f"w{i}"))
        await rt.sleep(2.0)

    rt.run(main())
    assert order == ["d0", "t1", "w2", "d3", "t4", "w5"]


def test_a_driver_also_runs_under_simpys_own_loop() -> None:
    """The runtime's loop resumes queued drivers inline; `env.run()` must do the same
    through the driver's callbacks (one model, whichever loop processes it)."""
    env = simpy.Environment()
    log: list[float] = []

    async def worker() -> None:
        for step in (0.5, 1, 2.25):  # an int delay too
            await delay(step)
            log.append(env.now)
        log.append(await wait(env.timeout(1.0, value=9)))

    Driver(env, worker())
    env.run()
    assert log == [0.5, 1.5, 3.75, 9]


def test_a_negative_sleep_is_refused_like_a_simpy_timeout() -> None:
    env = simpy.Environment()
    rt = SimRuntime(env)

    async def worker() -> None:
        await rt.sleep(-1.0)

    with pytest.raises(ValueError, match="Negative delay"):
        rt.run(worker())
