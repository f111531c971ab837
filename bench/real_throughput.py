"""Real-backend driver throughput: the lab against `redis-benchmark`, same server, same run.

Starts one server from `lab.redis.server` and measures, one after the other:
- `redis-benchmark -c 50 -t get` (C, the ceiling a client can reach on this
  machine), against keys of the same value size;
- the lab's `RedisCache.get` driven by 50 concurrent asyncio clients (the
  Cache implementation alone);
- the whole lab driver: `run_cell` on a read-only, all-hit, closed-loop
  scenario with 50 clients (ClientLoop + cache-aside strategy + RedisCache +
  oracle + recorder), whose summary's throughput is reported.

Each round measures the reference and the lab back to back; the median ratio
lab driver / redis-benchmark over the rounds is the figure (target >= 0.5,
issue 15). The lab's event loop is asyncio's (CACHELAB_LOOP=uvloop tries
uvloop's; lab/aio/runtime.py). All processes share the machine's cores (`nproc`
is printed): on a small machine the Python client and the server compete for them.
Usage: python bench/real_throughput.py [--seconds S] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import shutil
import statistics
import subprocess
import time
from typing import Any

from lab.aio.runtime import new_event_loop
from lab.core import Versioned
from lab.processes import HOST
from lab.redis.backend import RedisBackend
from lab.redis.binaries import ServerBinary, find_server_binary
from lab.redis.cache import RedisCache
from lab.redis.server import RedisServer, start_server
from lab.runner import run_cell
from lab.scenario import Cell, parse_scenario

CLIENTS = 50
KEYS = 10_000
VALUE_SIZE = 1024


def redis_benchmark(server: RedisServer, requests: int) -> float:
    """GET requests/s from redis-benchmark at CLIENTS connections (no pipelining)."""
    tool = shutil.which("redis-benchmark") or shutil.which("valkey-benchmark")
    if tool is None:
        raise SystemExit("redis-benchmark not found (apt-get install redis-tools)")
    out = subprocess.run(
        [tool, "-h", HOST, "-p", str(server.port), "-c", str(CLIENTS), "-n", str(requests),
         "-t", "set,get", "-d", str(VALUE_SIZE), "-r", str(KEYS), "--csv"],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    for row in csv.reader(io.StringIO(out.stdout)):
        if row and row[0] == "GET":
            return float(row[1])
    raise SystemExit(f"cannot parse redis-benchmark output:\n{out.stdout}\n{out.stderr}")


async def cache_gets(server: RedisServer, seconds: float) -> float:
    """GETs/s through the lab's RedisCache with CLIENTS concurrent asyncio clients."""
    cache = RedisCache([(HOST, server.port)], keys=KEYS, max_connections=CLIENTS)
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


def lab_driver(seconds: float, binary: ServerBinary) -> dict[str, Any]:
    """The whole lab on a read-only closed loop whose reads all hit after the first pass."""
    scenario = parse_scenario(
        {
            "name": "real-throughput",
            "duration": seconds + 1.0,
            "warmup": 1.0,
            "keyspace": {"keys": 2000, "value_size": VALUE_SIZE},
            "workload": {
                "mix": {"read": 1.0},
                "keys": {"distribution": "uniform"},
                "arrivals": {"process": "closed", "clients": CLIENTS},
            },
            "origin": {
                "read_latency": {"distribution": "constant", "value": 0},
                "write_latency": {"distribution": "constant", "value": 0},
            },
            "strategies": {"cache-aside": {"read": "cache-aside", "write": "invalidate"}},
            "backends": ["redis"],
        },
        "bench",
    )
    result = run_cell(
        scenario,
        Cell(scenario.name, "cache-aside", "redis", 1),
        backend=RedisBackend(binary=binary),
    )
    return result.summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each lab run")
    parser.add_argument(
        "--rounds", type=int, default=3, help="measure this many times, report the median"
    )
    parser.add_argument("--quick", action="store_true", help="2 s runs, fewer benchmark requests")
    args = parser.parse_args()
    seconds = 2.0 if args.quick else args.seconds
    rounds = 1 if args.quick else max(1, args.rounds)
    binary = find_server_binary()
    probe = new_event_loop()
    loop = type(probe).__module__.split(".")[0]
    probe.close()
    print(f"server {binary.label}, {os.cpu_count()} cpu(s), {CLIENTS} clients, "
          f"{VALUE_SIZE} B values, {rounds} round(s), event loop {loop}")  # fmt: skip
    ratios: list[float] = []
    for n in range(1, rounds + 1):
        # each round measures the reference and the lab back to back, so a machine
        # that gets busier or quieter moves both; the median ratio is the figure
        with start_server(binary=binary) as server:
            ceiling = redis_benchmark(server, 100_000 if args.quick else 400_000)
            with asyncio.Runner(loop_factory=new_event_loop) as runner:
                raw = runner.run(cache_gets(server, seconds))
        summary = lab_driver(seconds, binary)
        lab = float(summary["throughput"])
        ratios.append(lab / ceiling)
        print(f"round {n}")
        print(f"  redis-benchmark GET         {ceiling:12,.0f} req/s")
        print(f"  lab RedisCache.get          {raw:12,.0f} req/s   ratio {raw / ceiling:.2f}")
        p50, p99 = summary["read_latency_p50"] * 1e3, summary["read_latency_p99"] * 1e3
        print(
            f"  lab driver (run_cell)       {lab:12,.0f} req/s   ratio {lab / ceiling:.2f}   "
            f"hit ratio {summary['hit_ratio']:.3f}, read p50 {p50:.2f} ms, p99 {p99:.2f} ms"
        )
    median = statistics.median(ratios)
    verdict = "ok" if median >= 0.5 else "BELOW TARGET"
    print(
        f"lab driver / redis-benchmark: median {median:.2f} "
        f"(min {min(ratios):.2f}, max {max(ratios):.2f} over {rounds} round(s))"
    )
    print(f"target: median ratio >= 0.5: {verdict}")


if __name__ == "__main__":
    main()
