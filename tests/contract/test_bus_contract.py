"""The Bus contract (pub/sub, at most once) on the simulator and on a real server."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import simpy

from lab.aio import AsyncioRuntime
from lab.core import Key, Runtime
from lab.processes import HOST
from lab.redis.binaries import available_binaries
from lab.redis.bus import RedisBus
from lab.redis.server import start_server
from lab.sim.bus import SimBus
from lab.sim.runtime import SimRuntime

Body = Callable[[Any, Runtime, list[tuple[str, Key]]], Coroutine[Any, Any, None]]


def run_sim(body: Body, loss: float = 0.0, seed: int = 0) -> None:
    env = simpy.Environment()
    rt = SimRuntime(env)
    bus = SimBus(env, rtt=lambda: 0.0002, delay=lambda: 0.001, loss=loss, seed=seed)
    got: list[tuple[str, Key]] = []
    bus.subscribe("inv", lambda key: got.append(("a", key)))
    bus.subscribe("inv", lambda key: got.append(("b", key)))
    rt.run(body(bus, rt, got))


def run_redis(body: Body, loss: float = 0.0, seed: int = 0) -> None:
    server = start_server()

    async def main() -> None:
        bus = RedisBus([(HOST, server.port)], loss=loss, seed=seed)
        got: list[tuple[str, Key]] = []
        bus.subscribe("inv", lambda key: got.append(("a", key)))
        bus.subscribe("inv", lambda key: got.append(("b", key)))
        try:
            await bus.start()
            await body(bus, AsyncioRuntime(), got)
        finally:
            await bus.close()

    try:
        asyncio.run(main())
    finally:
        server.stop()


@pytest.fixture(params=["sim", "redis"])
def run(request: pytest.FixtureRequest) -> Callable[..., None]:
    if request.param == "redis" and not available_binaries():
        pytest.skip("no redis-server / valkey-server available")
    return run_sim if request.param == "sim" else run_redis


def test_every_subscriber_gets_every_message_with_its_type(run: Callable[..., None]) -> None:
    async def body(bus: Any, rt: Runtime, got: list[tuple[str, Key]]) -> None:
        await bus.publish("inv", 5)
        await bus.publish("inv", "name:x")
        await bus.publish("other", 6)  # nobody listens there
        for _ in range(100):
            if len(got) >= 4:
                break
            await rt.sleep(0.01)
        assert sorted(got, key=repr) == sorted(
            [("a", 5), ("b", 5), ("a", "name:x"), ("b", "name:x")], key=repr
        )

    run(body)


async def _fault(step: Any) -> None:
    """Fault steps are immediate on the simulator, network round trips on a server."""
    if inspect.isawaitable(step):
        await step


def test_a_loss_window_drops_what_is_published_in_it(run: Callable[..., None]) -> None:
    """bus_loss drops what is published in the window; after it, delivery resumes."""

    async def body(bus: Any, rt: Runtime, got: list[tuple[str, Key]]) -> None:
        await _fault(bus.start_losing())
        await bus.publish("inv", 1)
        await _fault(bus.recover())
        for _ in range(300):  # a real subscriber comes back in the background
            if getattr(bus, "subscribed", True):
                break
            await rt.sleep(0.01)
        await bus.publish("inv", 2)
        for _ in range(100):
            if len(got) >= 2:
                break
            await rt.sleep(0.01)
        assert sorted(got) == [("a", 2), ("b", 2)]  # 1 is lost

    run(body)


def test_a_delay_window_makes_messages_late_on_the_simulator() -> None:
    """The simulator's bus_delay model (on real servers the fault proxy delays the
    subscriber's connection: tests/real/test_proxy.py and test_real_fault_effects.py)."""

    async def body(bus: Any, rt: Runtime, got: list[tuple[str, Key]]) -> None:
        bus.start_delaying(lambda: 0.2)
        await bus.publish("inv", 2)
        bus.recover()
        await rt.sleep(0.1)
        assert got == []  # late
        await rt.sleep(0.3)
        assert sorted(got) == [("a", 2), ("b", 2)]

    run_sim(body)


def test_topology_bus_loss_drops_the_same_deliveries_on_both_backends() -> None:
    """`topology.bus.loss` outside any fault: each delivery (message x subscriber) is
    lost with that probability, drawn from the seed in the same order on both backends
    (real pub/sub loses nothing by itself: the redis bus draws when it receives), so a
    seed loses the same deliveries on both."""
    if not available_binaries():
        pytest.skip("no redis-server / valkey-server available")
    lost: dict[str, int] = {}

    def body_for(name: str) -> Body:
        async def body(bus: Any, rt: Runtime, got: list[tuple[str, Key]]) -> None:
            for i in range(300):
                await bus.publish("inv", i)
            for _ in range(300):
                if len(got) + bus.lost >= 600:
                    break
                await rt.sleep(0.01)
            assert len(got) + bus.lost == 600
            lost[name] = bus.lost

        return body

    run_sim(body_for("sim"), loss=0.3, seed=7)
    run_redis(body_for("redis"), loss=0.3, seed=7)
    assert 0.22 * 600 < lost["sim"] < 0.38 * 600
    assert lost["redis"] == lost["sim"]
