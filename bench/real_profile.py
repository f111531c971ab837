"""Where a real-server GET's client CPU goes: layer by layer, then cProfile and py-spy.

Client CPU per GET (this process's CPU time over the GETs it completed, 50
concurrent asyncio clients, 1 KiB values, all hits, one local server) is less
sensitive to a busy machine than requests/s, and it is what bounds the lab's
driver against redis-benchmark. Each layer adds one thing to the one before,
so the differences are what each costs per GET:

1. `floor`: asyncio streams-free minimum: an `asyncio.Protocol` per connection,
   the command packed once, replies parsed by hiredis, one future per GET
   (what any asyncio client must pay: the event loop, the transport's send and
   receive syscalls, hiredis);
2. `redis-py`: redis-py's `Redis.get` with its own connection pool (a user's plain
   client, for reference);
3. `lab pool`: the lab's connection pool (`lab.redis.cache._Pool.call`: redis-py's
   `Connection` with hiredis, its command packing and `read_response`, the lab's
   timeout and op timing);
4. `RedisCache.get`: + key naming, routing, the value codec, error mapping;
5. `driver`: the whole `run_cell` (client loop, cache-aside strategy, oracle,
   recorder, ticker and gauges) on a closed loop of 50 clients.

`redis-benchmark` (C, -P 1) is measured too: its CPU per request, from the child's
rusage over its SET and GET requests. Then (`--profile`) the driver runs under
cProfile and under py-spy and the top entries are printed.

Usage: python bench/real_profile.py [--seconds S] [--quick] [--profile] [--top K]
"""

from __future__ import annotations

import sys
from pathlib import Path

# This folder holds a `profile.py`, which cProfile would import instead of the
# standard library's: keep the script's own folder off the path.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import cProfile  # noqa: E402
import io  # noqa: E402
import pstats  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Awaitable, Callable  # noqa: E402
from typing import Any  # noqa: E402

import hiredis  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402

from lab.aio.runtime import new_event_loop  # noqa: E402
from lab.backend import FinalState, Parts  # noqa: E402
from lab.core import Versioned  # noqa: E402
from lab.processes import HOST  # noqa: E402
from lab.redis.backend import RedisBackend  # noqa: E402
from lab.redis.binaries import ServerBinary, find_server_binary  # noqa: E402
from lab.redis.cache import RedisCache  # noqa: E402
from lab.redis.server import RedisServer, start_server  # noqa: E402
from lab.runner import run_cell  # noqa: E402
from lab.scenario import Cell, parse_scenario  # noqa: E402
from lab.sharding import key_name  # noqa: E402

CLIENTS = 50
KEYS = 2000
VALUE_SIZE = 1024


def _run(coro: Awaitable[Any]) -> Any:
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(coro)  # type: ignore[arg-type]


def cpu_now() -> tuple[float, float]:
    """This process's (user, system) CPU seconds so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


Cpu = tuple[float, float]
"""(user, system) CPU seconds."""


async def _closed_loop(get: Callable[[int], Awaitable[Any]], seconds: float) -> tuple[int, Cpu]:
    """CLIENTS coroutines calling `get` back to back for `seconds`: (GETs, CPU s)."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def client(i: int) -> None:
        nonlocal done
        key = i
        while time.perf_counter() < deadline:
            await get(key)
            key = (key + 7919) % KEYS
            done += 1

    user, system = cpu_now()
    await asyncio.gather(*(client(i) for i in range(CLIENTS)))
    user_end, system_end = cpu_now()
    return done, (user_end - user, system_end - system)


async def _fill(server: RedisServer) -> None:
    cache = RedisCache([(HOST, server.port)], keys=KEYS)
    try:
        value = Versioned(1, VALUE_SIZE)
        for key in range(KEYS):
            await cache.set(key, value)
    finally:
        await cache.close()


class _GetProtocol(asyncio.Protocol):
    """One connection of the floor client: a GET out, its reply parsed by hiredis."""

    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiter: asyncio.Future[Any] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        reply = self.reader.gets()
        if reply is not False and self.waiter is not None:
            self.waiter.set_result(reply)
            self.waiter = None


async def floor(server: RedisServer, seconds: float) -> tuple[int, Cpu]:
    loop = asyncio.get_running_loop()
    conns = [
        (await loop.create_connection(_GetProtocol, HOST, server.port))[1] for _ in range(CLIENTS)
    ]
    packed = [b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(n), n) for n in _names()]
    free = list(conns)

    async def get(key: int) -> Any:
        proto = free.pop()
        waiter = proto.waiter = loop.create_future()
        assert proto.transport is not None
        proto.transport.write(packed[key])
        try:
            return await waiter
        finally:
            free.append(proto)

    try:
        return await _closed_loop(get, seconds)
    finally:
        for proto in conns:
            if proto.transport is not None:
                proto.transport.close()


def _names() -> list[bytes]:
    return [key_name(k).encode() for k in range(KEYS)]


async def redis_py(server: RedisServer, seconds: float) -> tuple[int, Cpu]:
    client = aioredis.Redis(host=HOST, port=server.port, max_connections=CLIENTS)
    names = _names()
    try:
        await asyncio.gather(*(client.ping() for _ in range(CLIENTS)))
        return await _closed_loop(lambda k: client.get(names[k]), seconds)
    finally:
        await client.aclose()


async def lab_pool(server: RedisServer, seconds: float) -> tuple[int, Cpu]:
    cache = RedisCache([(HOST, server.port)], keys=KEYS, max_connections=CLIENTS)
    names = [key_name(k) for k in range(KEYS)]
    call = cache.nodes[0].call
    try:
        await cache.connect(CLIENTS)
        return await _closed_loop(lambda k: call("GET", names[k]), seconds)
    finally:
        await cache.close()


async def cache_get(server: RedisServer, seconds: float) -> tuple[int, Cpu]:
    cache = RedisCache([(HOST, server.port)], keys=KEYS, max_connections=CLIENTS)
    try:
        await cache.connect(CLIENTS)
        return await _closed_loop(cache.get, seconds)
    finally:
        await cache.close()


class _TimedBackend(RedisBackend):
    """RedisBackend that notes this process's CPU time at the warm-up's end and at the end."""

    cpu_at_warmup: Cpu = (0.0, 0.0)
    cpu_at_end: Cpu = (0.0, 0.0)

    def warmup_over(self, parts: Parts) -> int:
        self.cpu_at_warmup = cpu_now()
        return super().warmup_over(parts)

    async def final_state(self, parts: Parts) -> FinalState:
        self.cpu_at_end = cpu_now()
        return await super().final_state(parts)


def driver(binary: ServerBinary, seconds: float) -> tuple[int, Cpu]:
    """The whole lab (run_cell) on a read-only closed loop whose reads all hit after warm-up."""
    scenario = parse_scenario(
        {
            "name": "real-profile",
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
            "strategies": {"cache-aside": {"read": "cache-aside", "write": "invalidate"}},
            "backends": ["redis"],
        },
        "bench",
    )
    backend = _TimedBackend(binary=binary)
    result = run_cell(scenario, Cell(scenario.name, "cache-aside", "redis", 1), backend=backend)
    (user, system), (user_end, system_end) = backend.cpu_at_warmup, backend.cpu_at_end
    return int(result.summary["requests"]), (user_end - user, system_end - system)


def benchmark_cpu(server: RedisServer, requests: int) -> tuple[float, float] | None:
    """redis-benchmark's GET requests/s and its CPU µs per request (SET and GET alike)."""
    tool = shutil.which("redis-benchmark") or shutil.which("valkey-benchmark")
    if tool is None:
        return None
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [tool, "-h", HOST, "-p", str(server.port), "-c", str(CLIENTS), "-n", str(requests),
         "-t", "set,get", "-d", str(VALUE_SIZE), "-r", str(KEYS), "--csv"],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rate = next(
        float(row.split(",")[1].strip('"'))
        for row in out.stdout.splitlines()
        if row.startswith('"GET"')
    )
    return rate, cpu / (2 * requests) * 1e6


PARENT = {
    "redis-py Redis.get": "floor (asyncio Protocol + hiredis)",
    "lab pool (_Pool.call)": "floor (asyncio Protocol + hiredis)",
    "lab RedisCache.get": "lab pool (_Pool.call)",
    "lab driver (run_cell)": "lab RedisCache.get",
}
"""The layer each one adds to (redis-py's client is a reference beside the lab's pool)."""


def layers(binary: ServerBinary, seconds: float) -> list[tuple[str, int, Cpu]]:
    """(layer, GETs, CPU) for every layer, each on a fresh server."""
    rows: list[tuple[str, int, Cpu]] = []
    steps: list[tuple[str, Callable[[RedisServer, float], Awaitable[tuple[int, Cpu]]]]] = [
        ("floor (asyncio Protocol + hiredis)", floor),
        ("redis-py Redis.get", redis_py),
        ("lab pool (_Pool.call)", lab_pool),
        ("lab RedisCache.get", cache_get),
    ]
    for name, step in steps:
        with start_server(binary=binary) as server:
            _run(_fill(server))
            gets, cpu = _run(step(server, seconds))
        rows.append((name, gets, cpu))
    gets, cpu = driver(binary, seconds)
    rows.append(("lab driver (run_cell)", gets, cpu))
    return rows


def cprofile_driver(binary: ServerBinary, seconds: float, top: int) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    gets, _ = driver(binary, seconds)
    profiler.disable()
    out = io.StringIO()
    out.write(f"cProfile: driver, {gets:,} GETs measured (its per-call overhead inflates "
              "small functions)\n")  # fmt: skip
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


SYSCALLS = "in syscalls: send (transport.write), epoll, recv"
"""The leaf frames that are a system call: their samples are wall time (a send on
loopback wakes the server, which may take the CPU mid-call), so they are shown apart;
the system CPU per GET (rusage) is their measure."""


SETUP = (
    "lab/origins/",
    "MeteredOrigin.",
    "RedisCache.set (",
    "RedisCache.connect (",
    "RedisCache.touch_all (",
    "RedisBackend._open (",
)
"""Frames of what a measured all-hit GET never does (opening, filling, loading)."""


def category(function: str, path: str) -> str:
    """Where a sampled leaf frame's time belongs (py-spy gives paths from the package:
    `lab/redis/cache.py`, `redis/asyncio/connection.py`, `asyncio/streams.py`)."""
    if function in (
        "_SelectorSocketTransport.write",
        "EpollSelector.select",
        "_SelectorSocketTransport._read_ready__data_received",
    ):
        return SYSCALLS
    if path.startswith("lab/redis/"):
        return "lab: cache client (pool, timeout, routing, op timing)"
    if path.startswith("lab/codec"):
        return "lab: value codec"
    if path.startswith("lab/"):
        return "lab: client loop, strategy, recorder, oracle, workload"
    if path.startswith("redis/"):
        if function.endswith("pack_command") or path.endswith("encoders.py"):
            return "redis-py: command packing"
        return "redis-py: read_response layers, hiredis parse (C)"
    if path.startswith(("asyncio/", "selectors.py")):
        return "asyncio: event loop, futures, tasks, StreamReader"
    return "other"


def pyspy_driver(seconds: float, top: int, rate: int, per_get: float | None = None) -> str:
    """py-spy's leaf functions of the driver's event loop, by category and by function;
    with `per_get` (the driver's measured CPU µs per GET) each share in µs as well."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(exe).exists():
        return "py-spy: not installed (pip install py-spy); skipped\n"
    with tempfile.TemporaryDirectory(prefix="bench-real-profile-") as tmp:
        raw = Path(tmp) / "samples.txt"
        command = [exe, "record", "--format", "raw", "--rate", str(rate), "-o", str(raw)]
        child = [sys.executable, __file__, "--child", "--seconds", str(seconds)]
        done = subprocess.run([*command, "--", *child], capture_output=True, text=True)
        if done.returncode != 0 or not raw.exists():  # e.g. no ptrace permission
            return f"py-spy: failed ({done.stderr.strip().splitlines()[-1:]}); skipped\n"
        functions, categories, total = Counter[str](), Counter[str](), 0
        for row in raw.read_text().splitlines():
            stack, _, count = row.rpartition(" ")
            if "_run_once (" not in stack or any(step in stack for step in SETUP):
                continue  # set-up, the warm-up's fills, the summary: not an all-hit GET
            n = int(count)
            total += n
            leaf = stack.split(";")[-1]
            function, _, where = leaf.partition(" (")
            path = where.split(":")[0]
            functions[f"{function} ({path})"] += n
            categories[category(function, path)] += n
    out = io.StringIO()
    out.write(f"py-spy: {total:,} samples at {rate}/s inside the event loop (whole run)\n")
    python = total - categories[SYSCALLS]
    scale = f", scaled to the driver's {per_get:.1f} µs user CPU per GET" if per_get else ""
    out.write(f"\n  by category (share of the samples outside syscalls{scale}):\n")
    for name, n in categories.most_common():
        if name == SYSCALLS:
            continue
        share = n / max(python, 1)
        micro = f"{share * per_get:6.1f} µs" if per_get else ""
        out.write(f"  {100 * share:5.1f}%  {micro}  {name}\n")
    in_calls = categories[SYSCALLS]
    out.write(f"  ({in_calls:,} samples, {100 * in_calls / max(total, 1):.0f}% of all, were "
              f"{SYSCALLS}: see the system CPU per GET above)\n")  # fmt: skip
    out.write(f"\n  top {top} leaf functions:\n")
    for name, n in functions.most_common(top):
        out.write(f"  {100 * n / max(total, 1):5.1f}%  {name}\n")
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measurement")
    parser.add_argument("--quick", action="store_true", help="2 s measurements")
    parser.add_argument("--profile", action="store_true", help="also cProfile and py-spy")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    seconds = 2.0 if args.quick else args.seconds
    binary = find_server_binary()
    if args.child:  # the process py-spy samples
        driver(binary, seconds)
        return
    probe = new_event_loop()
    loop = type(probe).__module__.split(".")[0]
    probe.close()
    print(f"server {binary.label}, {CLIENTS} clients, {VALUE_SIZE} B values, all hits, "
          f"{seconds:g} s each, event loop {loop}")  # fmt: skip
    with start_server(binary=binary) as server:
        _run(_fill(server))
        reference = benchmark_cpu(server, 50_000 if args.quick else 200_000)
    if reference is not None:
        print(f"  {'redis-benchmark (C, -P 1)':36} {reference[0]:10,.0f} GET/s "
              f"{reference[1]:7.1f} µs CPU per request")  # fmt: skip
    print(f"  {'':36} {'GET/s':>10} {'CPU µs per GET: user + system = total':>40}  added")
    totals: dict[str, float] = {}
    driver_total = None  # its user CPU µs per GET
    for name, gets, (user, system) in layers(binary, seconds):
        user, system = user / max(gets, 1) * 1e6, system / max(gets, 1) * 1e6
        total = totals[name] = user + system
        if "driver" in name:
            driver_total = user
        parent = PARENT.get(name)
        added = f"+{total - totals[parent]:5.1f} on {parent.split(' ')[0]}" if parent else ""
        print(f"  {name:36} {gets / seconds:10,.0f} "
              f"{user:19.1f} + {system:6.1f} = {total:6.1f}  {added}")  # fmt: skip
    if args.profile:
        print()
        print(cprofile_driver(binary, seconds, args.top))
        print(pyspy_driver(seconds, args.top, args.rate, driver_total))


if __name__ == "__main__":
    main()
