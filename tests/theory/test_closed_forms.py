"""The simulator against closed-form results, each within a stated tolerance.

1. LRU under independent (IRM) Zipf requests: Che's approximation, per node
   (keys split by ketama), within 1 percentage point.
2. A TTL-only cache (write-around) under Poisson reads and writes per key: the
   renewal-theory hit ratio and stale-read fraction, within 1 point.
3. The origin as an M/M/c queue: mean response time against Erlang C, within 3%.

Latencies are made negligible (1 us) where the formulas assume instant
service, so what is tested is the cache model itself, not a latency artefact.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import simpy

from lab.runner import run_cell
from lab.sampling import rng_for, sampler
from lab.scenario import Cell, Distribution
from lab.sharding import lazy_owner_table
from lab.sim.origin import SimOrigin
from lab.sim.runtime import SimRuntime
from lab.workload.keys import KeyGenerator, zipf_probabilities
from tests.helpers import make_scenario

pytestmark = pytest.mark.slow

INSTANT = {"distribution": "constant", "value": "1us"}


def che_hit_ratio(p: np.ndarray, capacity: int) -> float:
    """Hit ratio sum p_i (1 - exp(-p_i T)), T solving sum (1 - exp(-p_i T)) = capacity."""
    if capacity >= p.size:
        return float(p.sum())
    lo, hi = 0.0, 1.0
    while np.sum(1 - np.exp(-p * hi)) < capacity:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if np.sum(1 - np.exp(-p * mid)) < capacity:
            lo = mid
        else:
            hi = mid
    return float(np.sum(p * (1 - np.exp(-p * lo))))


@pytest.mark.parametrize(
    ("nodes", "capacity", "s", "keys"),
    [(1, 1000, 0.8, 20_000), (3, 400, 0.99, 20_000)],
)
def test_lru_hit_ratio_matches_che(nodes: int, capacity: int, s: float, keys: int) -> None:
    seed = 11
    sc = make_scenario(
        requests=400_000,
        warmup="100s",  # 100k of the 400k requests at 1000/s
        keyspace={"keys": keys},
        workload={
            "mix": {"read": 1.0},
            "keys": {"distribution": "zipf", "s": s},
            "arrivals": {"process": "poisson", "rate": "1000/s"},
        },
        topology={
            "nodes": nodes,
            "capacity": capacity,
            "eviction": "lru",
            "network": {"rtt": INSTANT},
            "service_time": INSTANT,
        },
        origin={"read_latency": INSTANT, "write_latency": INSTANT},
    )
    result = run_cell(sc, Cell(sc.name, "cache-aside", "sim", seed))
    # popularity by key id: the generator maps ranks to ids through its permutation
    generator = KeyGenerator(sc.workload.keys, keys, rng_for(seed, "workload.keys"))
    p = np.empty(keys)
    p[generator.permutation] = zipf_probabilities(keys, s)
    owners = np.array(lazy_owner_table("ketama", nodes, keys))
    expected = sum(che_hit_ratio(p[owners == n], capacity) for n in range(nodes))
    measured = result.summary["hit_ratio"]
    assert abs(measured - expected) < 0.01, (measured, expected)


def test_ttl_only_cache_matches_renewal_theory() -> None:
    keys, rate, read_share, ttl = 100, 10_000.0, 0.9, 0.05
    sc = make_scenario(
        requests=None,
        duration="30s",
        warmup="2s",
        keyspace={"keys": keys},
        workload={
            "mix": {"read": read_share},
            "keys": {"distribution": "uniform"},
            "arrivals": {"process": "poisson", "rate": rate},
        },
        topology={"nodes": 1, "network": {"rtt": INSTANT}, "service_time": INSTANT},
        origin={"read_latency": INSTANT, "write_latency": INSTANT, "concurrency": 1000},
        strategies={"ttl": {"read": "cache-aside", "write": "around", "ttl": ttl}},
    )
    summary = run_cell(sc, Cell(sc.name, "ttl", "sim", 3)).summary
    lam_r = rate * read_share / keys  # reads per key per second
    lam_w = rate * (1 - read_share) / keys  # writes per key per second
    # a miss loads the key for `ttl`; the reads in that window hit; then the next read misses
    cycle = 1 + lam_r * ttl
    hit_ratio = lam_r * ttl / cycle
    # a hit at age u is stale if a write was acknowledged in (0, u): P = 1 - exp(-lam_w u)
    stale_hits = lam_r * (ttl - (1 - math.exp(-lam_w * ttl)) / lam_w)
    stale_ratio = stale_hits / cycle
    assert abs(summary["hit_ratio"] - hit_ratio) < 0.01, (summary["hit_ratio"], hit_ratio)
    assert abs(summary["stale_read_ratio"] - stale_ratio) < 0.01, (
        summary["stale_read_ratio"],
        stale_ratio,
    )
    # a stale read is never older than one TTL
    assert summary["staleness_age_max"] <= ttl * 1.01


def erlang_c_response_time(lam: float, mean_service: float, servers: int) -> float:
    """Mean time in an M/M/c system (wait + service)."""
    mu = 1 / mean_service
    a = lam / mu
    rho = a / servers
    top = a**servers / math.factorial(servers) / (1 - rho)
    bottom = sum(a**k / math.factorial(k) for k in range(servers)) + top
    p_wait = top / bottom
    return p_wait / (servers * mu - lam) + mean_service


def test_origin_queue_matches_erlang_c() -> None:
    lam, mean_service, servers, n = 300.0, 0.010, 4, 200_000
    env = simpy.Environment()
    rt = SimRuntime(env)
    service = Distribution(distribution="exponential", mean=mean_service)
    origin = SimOrigin(
        env,
        value_size=1,
        read_latency=sampler(service, rng_for(1, "service")),
        write_latency=sampler(service, rng_for(1, "service-w")),
        concurrency=servers,
    )
    gaps = rng_for(1, "arrivals").exponential(1 / lam, n).tolist()
    times: list[float] = []

    async def one() -> None:
        start = rt.now()
        await origin.read(1)
        times.append(rt.now() - start)

    async def arrivals() -> Any:
        for gap in gaps:
            await rt.sleep(gap)
            rt.spawn(one())
        await rt.sleep(10)

    rt.run(arrivals())
    measured = float(np.mean(times[n // 10 :]))
    expected = erlang_c_response_time(lam, mean_service, servers)
    assert abs(measured / expected - 1) < 0.03, (measured, expected)


def test_cache_operation_time_matches_mm1() -> None:
    """A node is a FIFO single server: with Poisson operations (read-only, every read
    a hit after the warm-up) and exponential service, an operation's time is the RTT
    plus an M/M/1 sojourn, exponential with rate mu - lambda: p50 = rtt + ln 2 /
    (mu - lambda), p99 = rtt + ln 100 / (mu - lambda). Checked within 3%."""
    lam, mean_service, rtt = 6000.0, 1 / 10_000, 0.0005
    scenario = make_scenario(
        requests=None,
        duration=60.0,
        warmup=2.0,
        keyspace={"keys": 50},
        workload={
            "mix": {"read": 1.0},
            "keys": {"distribution": "uniform"},
            "arrivals": {"process": "poisson", "rate": lam},
        },
        topology={
            "nodes": 1,
            "network": {"rtt": {"distribution": "constant", "value": rtt}},
            "service_time": {"distribution": "exponential", "mean": mean_service},
        },
        strategies={"ca": {"read": "cache-aside", "write": "invalidate"}},
    )
    s = run_cell(scenario, Cell("t", "ca", "sim", 3)).summary
    assert s["hit_ratio"] > 0.999
    rate = 1 / mean_service - lam
    assert s["cache_op_p50"] == pytest.approx(rtt + math.log(2) / rate, rel=0.03)
    assert s["cache_op_p99"] == pytest.approx(rtt + math.log(100) / rate, rel=0.03)
