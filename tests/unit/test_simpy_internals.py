"""The SimPy internals the simulator relies on, checked one by one.

lab/sim/bridge.py and lab/sim/runtime.py push to `env._queue` with `env._eid`,
set `env._now`, and read `Event._ok` / `_value` / `_defused`: the public API
(`env.schedule`, `env.step`, `env.now`) costs about three Python calls more per
event (`make perf` prints the figure). pyproject.toml pins SimPy to the minor
version checked here; if a SimPy release changes any of this, these tests fail
with the name of what changed, before any simulated number moves.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import simpy
from simpy.core import Environment
from simpy.events import NORMAL, PENDING, URGENT, Event, Timeout

from lab.sim.bridge import Driver, delay, wake_after
from lab.sim.runtime import SimRuntime

CHECKED = ("4.1",)
"""SimPy minor versions these internals were checked against (pyproject pins the same)."""


def test_the_installed_simpy_is_a_version_the_internals_were_checked_against() -> None:
    minor = ".".join(simpy.__version__.split(".")[:2])
    assert minor in CHECKED, (
        f"SimPy {simpy.__version__} is not one of {CHECKED}: lab/sim/bridge.py and "
        "runtime.py use its internals; run this file's tests, then update CHECKED and the "
        "pin in pyproject.toml"
    )


def test_the_queue_is_a_heap_of_time_priority_counter_event() -> None:
    env = Environment()
    assert isinstance(env._queue, list), "Environment._queue is no longer a list"
    assert isinstance(env._eid, itertools.count), "Environment._eid is no longer a counter"
    timeout = env.timeout(2.5)
    succeeded = env.event().succeed("x")
    urgent = env.event()
    env.schedule(urgent, URGENT)
    entries = sorted(env._queue)
    assert [(t, p, e) for t, p, _, e in entries] == [
        (0, URGENT, urgent),
        (0, NORMAL, succeeded),
        (2.5, NORMAL, timeout),
    ]
    eid = {e: n for _, _, n, e in entries}
    assert eid[timeout] < eid[succeeded] < eid[urgent], "the tie-break counter no longer counts"
    assert (NORMAL, URGENT) == (1, 0)


def test_now_is_the_attribute_the_runtime_sets() -> None:
    env = Environment(initial_time=3.0)
    assert env._now == env.now == 3.0
    env._now = 4.5
    assert env.now == 4.5, "Environment.now no longer reads Environment._now"


def test_event_outcome_attributes() -> None:
    env = Environment()
    pending = Event(env)
    assert pending.callbacks == [] and pending._value is PENDING, "a pending Event changed"
    ok = env.event().succeed(7)
    assert (ok._ok, ok._value) == (True, 7), "Event._ok / _value changed"
    failed = env.event().fail(KeyError("k"))
    assert failed._ok is False and isinstance(failed._value, KeyError)
    failed._defused = True
    assert failed.defused, "Event._defused no longer backs the public `defused`"
    timeout = Timeout(env, 1.0, value="v")
    assert (timeout._ok, timeout._value, timeout._delay) == (True, "v", 1.0)


def test_step_processes_a_queued_driver_like_any_event() -> None:
    """SimPy's step swaps `callbacks` for None, calls each with the event and checks
    `_ok`: a driver queued on a delay takes part through exactly that."""
    env = Environment()
    woke: list[float] = []

    async def body() -> None:
        await delay(1.25)
        woke.append(env.now)

    Driver(env, body())
    (entry,) = env._queue
    assert isinstance(entry[3], Driver) and entry[3].callbacks is not None
    env.step()
    assert woke == [1.25]
    assert entry[3].callbacks is None


def test_the_runtime_loop_processes_in_simpys_order() -> None:
    """A random mix of timeouts, wake-ups, urgent successes and sleeping coroutines is
    processed in the same order by SimRuntime's inlined loop as by `env.run()`."""

    def scenario(env: Environment, spawn: Any, log: list[tuple[float, str]]) -> None:
        rng = random.Random(5)

        async def sleeper(name: str, delays: list[float]) -> None:
            for d in delays:
                await delay(d)
                log.append((env.now, name))
                if rng.random() < 0.3:
                    env.event().succeed().callbacks.append(
                        lambda _e, n=name: log.append((env.now, f"succeeded after {n}"))
                    )

        for i in range(30):
            d = rng.choice([0.0, 0.5, 1.0, 1.5])
            kind = i % 3
            if kind == 0:
                env.timeout(d).callbacks.append(lambda _e, i=i: log.append((env.now, f"t{i}")))
            elif kind == 1:
                wake_after(env, d).callbacks.append(lambda _e, i=i: log.append((env.now, f"w{i}")))
            else:
                spawn(sleeper(f"s{i}", [rng.choice([0.0, 0.5, 1.0]) for _ in range(4)]))

    reference: list[tuple[float, str]] = []
    env = Environment()
    scenario(env, lambda coro: Driver(env, coro), reference)
    env.run()

    inlined: list[tuple[float, str]] = []
    env = Environment()
    rt = SimRuntime(env)

    async def main() -> None:
        scenario(env, rt.spawn, inlined)
        await rt.sleep(10.0)

    rt.run(main())
    assert inlined == reference
    assert len(reference) > 60
