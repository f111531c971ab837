"""What many tests build the same way: small scenarios with exact latencies, a
read-mostly Poisson workload, and the real-server chores (binaries, orphan checks,
fail-fast clients). Import from here instead of copying."""

from __future__ import annotations

import itertools
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import simpy

from lab.processes import (
    ServerNotFound,
    leaked_processes,
    live_servers,
    process_alive,
    stop_all,
)
from lab.redis.binaries import ServerBinary, find_server_binary
from lab.redis.server import control_client
from lab.scenario import Scenario, parse_scenario
from lab.sim.cluster import SimCluster
from lab.sim.origin import SimOrigin
from lab.sim.runtime import SimRuntime

FAST: dict[str, Any] = {"distribution": "constant", "value": 0.0005}
"""A constant 0.5 ms: exact and quick (origin latencies of real-server tests)."""
FAST_ORIGIN: dict[str, Any] = {"read_latency": FAST, "write_latency": FAST}


def make_scenario(**overrides: Any) -> Scenario:
    """A small valid scenario; keyword arguments replace top-level fields."""
    data: dict[str, Any] = {
        "name": "t",
        "requests": 2000,
        "keyspace": {"keys": 100},
        "workload": {"arrivals": {"process": "poisson", "rate": 1000}},
        "strategies": {"cache-aside": {"read": "cache-aside", "write": "invalidate", "ttl": 60}},
    }
    data.update(overrides)
    return parse_scenario(data, "test")


def poisson(rate: float | str, *, read: float = 0.9, zipf: float = 0.9, **extra: Any) -> Any:
    """A read-mostly zipfian open-loop workload at `rate` requests/s (the same stream on
    every backend: arrivals do not depend on what the cache does)."""
    return {
        "mix": {"read": read},
        "keys": {"distribution": "zipf", "s": zipf},
        "arrivals": {"process": "poisson", "rate": rate},
        **extra,
    }


def timed_scenario(duration: float | str, rate: float | str, **overrides: Any) -> Scenario:
    """A run of `duration` (not a request count) under `poisson(rate)`."""
    data: dict[str, Any] = {"requests": None, "duration": duration, "workload": poisson(rate)}
    data.update(overrides)
    return make_scenario(**data)


# -- real servers ---------------------------------------------------------------------


def default_binary() -> ServerBinary:
    """Whatever find_server_binary() picks (honours CACHELAB_SERVER*); skips if none."""
    try:
        return find_server_binary()
    except ServerNotFound as exc:
        pytest.skip(str(exc))


def no_orphan_servers() -> Iterator[None]:
    """For a session fixture: at the end no server started by the tests may survive."""
    yield
    left_running = live_servers()
    stop_all()
    leaked = leaked_processes()
    assert not leaked, f"server processes still alive after stop_all(): {leaked}"
    assert not left_running, f"tests did not stop these servers: {left_running}"


def interruptible() -> None:
    """`preexec_fn` for a subprocess a test interrupts with SIGINT: SIGINT back to its
    default, so Python turns it into KeyboardInterrupt even when the suite itself was
    started with SIGINT ignored (nohup, a background job, some CI runners)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_gone(pids: list[int], timeout: float = 5.0) -> list[int]:
    """Poll until every pid is gone (zombies count as gone); return survivors."""
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if process_alive(pid)]
        if alive:
            time.sleep(0.02)
    return alive


def fast_client(port: int, timeout: float = 2.0, *, decode: bool = False) -> redis.Redis:
    """A client that fails fast: no retry hides a reset or a timeout (the lab's own
    control client, answering bytes unless `decode`)."""
    return control_client(port, timeout, decode)


def zero_network_sim(read_latency: float = 0.0) -> tuple[SimRuntime, SimCluster, SimOrigin]:
    """A one-node simulated cache that answers at once and an origin whose reads take
    `read_latency` (writes take no time): for exact timelines of strategy parts."""
    env = simpy.Environment()
    zero = itertools.repeat(0.0).__next__
    cache = SimCluster(
        env, nodes=1, capacity=None, eviction="lru", sharding="ketama", rtt=zero, service=zero
    )
    origin = SimOrigin(
        env,
        value_size=8,
        read_latency=itertools.repeat(read_latency).__next__,
        write_latency=zero,
        concurrency=8,
    )
    return SimRuntime(env), cache, origin
