"""Which asyncio memcached client the backend uses: emcache vs aiomcache, measured.

Against one memcached the lab starts, each client does GETs of 1 KiB values
(all hits) from 1 and from 50 concurrent asyncio tasks for a few seconds,
one client after the other, in rounds; the median ops/s per client and
concurrency is printed (docs/memcached.md keeps the figures).
Usage: python bench/memcached_clients.py [--seconds S] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiomcache
import emcache

from lab.memcached.server import Options, start_memcached

KEYS = 1000
Get = Callable[[bytes], Awaitable[Any]]


async def _drive(get: Get, tasks: int, seconds: float) -> float:
    done = 0
    end = time.perf_counter() + seconds

    async def worker(i: int) -> None:
        nonlocal done
        k = i
        while time.perf_counter() < end:
            await get(b"key:%d" % (k % KEYS))
            k += 7
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(tasks)))
    return done / (time.perf_counter() - start)


async def _emcache(address: tuple[str, int], tasks: int, seconds: float) -> float:
    client = await emcache.create_client(
        [emcache.MemcachedHostAddress(*address)], max_connections=tasks, autobatching=False
    )
    try:
        for k in range(KEYS):
            await client.set(b"key:%d" % k, b"x" * 1024)
        return await _drive(client.get, tasks, seconds)
    finally:
        await client.close()


async def _aiomcache(address: tuple[str, int], tasks: int, seconds: float) -> float:
    client = aiomcache.Client(*address, pool_size=tasks)
    try:
        return await _drive(client.get, tasks, seconds)
    finally:
        await client.close()


async def _aiomcache_timeout(address: tuple[str, int], tasks: int, seconds: float) -> float:
    """aiomcache has no operation timeout: the lab needs one (a paused node must fail
    within the client timeout), so each GET goes through asyncio.wait_for."""
    client = aiomcache.Client(*address, pool_size=tasks)

    async def get(key: bytes) -> Any:
        return await asyncio.wait_for(client.get(key), 1.0)

    try:
        return await _drive(get, tasks, seconds)
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[tuple[str, int], list[float]] = {}
    with start_memcached(Options(memory_mib=64, threads=4)) as server:
        for _ in range(args.rounds):
            for tasks in (1, 50):
                for name, run in (
                    ("emcache", _emcache),
                    ("aiomcache", _aiomcache),
                    ("aiomcache+wait_for", _aiomcache_timeout),
                ):
                    rate = asyncio.run(run(server.address, tasks, args.seconds))
                    results.setdefault((name, tasks), []).append(rate)
    print("client              clients   GET ops/s (median)")
    for (name, tasks), rates in results.items():
        print(f"{name:<19} {tasks:>7}   {statistics.median(rates):>10,.0f}")


if __name__ == "__main__":
    main()
