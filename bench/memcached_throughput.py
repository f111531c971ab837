"""Real memcached driver throughput: the lab against a minimal pymemcache loop, same server.

memtier_benchmark is not packaged by Debian, so the reference load generator is
the smallest honest one: a pymemcache client in a plain loop of GETs (one
connection per thread, `CLIENTS` threads; C-speed parsing, no asyncio). Each
round measures, one after the other against one memcached the lab starts:
- the reference loop (GETs/s);
- the lab's `MemcachedCache.get` with `CLIENTS` concurrent asyncio clients;
- the whole lab driver: `run_cell` on a read-only, all-hit, closed-loop scenario
  with `CLIENTS` clients on the memcached backend (its summary's throughput).
The median ratio lab driver / reference over the rounds is the figure. Without
a memcached binary it says so and exits 0 (nothing to measure).
Usage: python bench/memcached_throughput.py [--seconds S] [--rounds N] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import threading
import time
from typing import Any

from pymemcache.client.base import Client

from lab.core import Versioned
from lab.memcached.binaries import memcached_available
from lab.memcached.cache import MemcachedCache
from lab.memcached.server import MemcachedServer, Options
from lab.runner import run_cell
from lab.scenario import Cell, parse_scenario

CLIENTS = 50
KEYS = 2000
VALUE_SIZE = 1024


def reference(server: MemcachedServer, seconds: float) -> float:
    """GETs/s of `CLIENTS` threads, each a pymemcache client in a loop."""
    setup = Client(server.address)
    for key in range(KEYS):
        setup.set(b"key:%d" % key, b"x" * VALUE_SIZE, noreply=False)
    setup.close()
    counts = [0] * CLIENTS
    deadline = time.perf_counter() + seconds

    def loop(i: int) -> None:
        client = Client(server.address, no_delay=True)
        key = i
        while time.perf_counter() < deadline:
            client.get(b"key:%d" % key)
            key = (key + 7919) % KEYS
            counts[i] += 1
        client.close()

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(CLIENTS)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - start)


async def cache_gets(server: MemcachedServer, seconds: float) -> float:
    """GETs/s through the lab's MemcachedCache with `CLIENTS` asyncio clients."""
    cache = MemcachedCache([server.address], keys=KEYS, max_connections=CLIENTS)
    try:
        await cache.connect(CLIENTS)
        value = Versioned(1, VALUE_SIZE)
        for key in range(KEYS):
            await cache.set(key, value)
        done = 0
        deadline = time.perf_counter() + seconds

        async def client(i: int) -> None:
            nonlocal done
            key = i
            while time.perf_counter() < deadline:
                await cache.get(key)
                key = (key + 7919) % KEYS
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(CLIENTS)))
        return done / (time.perf_counter() - start)
    finally:
        await cache.close()


def lab_driver(seconds: float) -> dict[str, Any]:
    scenario = parse_scenario(
        {
            "name": "memcached-throughput",
            "duration": seconds + 1.0,
            "warmup": 1.0,
            "keyspace": {"keys": KEYS, "value_size": VALUE_SIZE},
            "workload": {
                "mix": {"read": 1.0},
                "keys": {"distribution": "uniform"},
                "arrivals": {"process": "closed", "clients": CLIENTS},
            },
            "origin": {
                "read_latency": {"distribution": "constant", "value": 0},
                "write_latency": {"distribution": "constant", "value": 0},
            },
            "topology": {"memcached": {"memory": "64MiB", "threads": 4}},
            "strategies": {"cache-aside": {"read": "cache-aside", "write": "invalidate"}},
            "backends": ["memcached"],
        },
        "bench",
    )
    return run_cell(scenario, Cell(scenario.name, "cache-aside", "memcached", 1)).summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 s runs, one round")
    args = parser.parse_args()
    binary = memcached_available()
    if binary is None:
        print("memcached: skipped, no memcached binary (apt-get install memcached)")
        return
    seconds = 2.0 if args.quick else args.seconds
    rounds = 1 if args.quick else max(1, args.rounds)
    print(f"server {binary.label} -t 4, {os.cpu_count()} cpu(s), {CLIENTS} clients, "
          f"{VALUE_SIZE} B values, {rounds} round(s)")  # fmt: skip
    ratios: list[float] = []
    for n in range(1, rounds + 1):
        with MemcachedServer(Options(threads=4), binary=binary) as server:
            ceiling = reference(server, seconds)
            raw = asyncio.run(cache_gets(server, seconds))
        summary = lab_driver(seconds)
        lab = float(summary["throughput"])
        ratios.append(lab / ceiling)
        print(f"round {n}")
        print(f"  pymemcache loop GET ({CLIENTS} threads) {ceiling:10,.0f} req/s")
        print(f"  lab MemcachedCache.get          {raw:10,.0f} req/s   ratio {raw / ceiling:.2f}")
        p50, p99 = summary["read_latency_p50"] * 1e3, summary["read_latency_p99"] * 1e3
        print(
            f"  lab driver (run_cell)           {lab:10,.0f} req/s   ratio {lab / ceiling:.2f}   "
            f"hit ratio {summary['hit_ratio']:.3f}, read p50 {p50:.2f} ms, p99 {p99:.2f} ms"
        )
    median = statistics.median(ratios)
    print(
        f"lab driver / pymemcache loop: median {median:.2f} "
        f"(min {min(ratios):.2f}, max {max(ratios):.2f} over {rounds} round(s))"
    )


if __name__ == "__main__":
    main()
