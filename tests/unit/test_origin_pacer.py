"""The emulated origin's waits last what the scenario draws, on average, on a loop that
wakes sleepers late (`lab.origins.base.Pacer`), here with a clock that is 1 ms late on
every wake-up, as a busy event loop is."""

from __future__ import annotations

import asyncio

import pytest

from lab.origins.base import Emulation, Pacer
from lab.scenario import Distribution, OriginSpec


class LateClock:
    """Every sleep returns `late` seconds after it was due."""

    def __init__(self, late: float) -> None:
        self.now, self.late, self.slept = 0.0, late, 0

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds + self.late
        self.slept += 1


def test_waits_take_what_was_asked_on_average() -> None:
    clock = LateClock(0.001)
    pacer = Pacer(clock.time, clock.sleep)

    async def run() -> list[float]:
        took = []
        for _ in range(400):
            start = clock.now
            await pacer.wait(0.005)
            took.append(clock.now - start)
        return took

    took = asyncio.run(run())
    assert took[0] == pytest.approx(0.006)  # no history yet: late by the loop's lag
    assert sum(took[-100:]) / 100 == pytest.approx(0.005, abs=1e-6)
    assert pacer.late == pytest.approx(0.001, rel=1e-3)


def test_a_wait_shorter_than_the_lag_is_not_slept() -> None:
    clock = LateClock(0.001)
    pacer = Pacer(clock.time, clock.sleep)
    pacer.late = 0.001
    asyncio.run(pacer.wait(0.0004))
    assert clock.slept == 0 and clock.now == 0.0


def test_the_network_leg_draws_the_scenarios_rtt() -> None:
    spec = OriginSpec()
    rtt = Distribution(distribution="constant", value=0.002)
    assert Emulation(spec, 1, True, rtt).rtt() == 0.002
    assert Emulation(spec, 1, True).rtt() == 0.0
