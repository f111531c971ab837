"""Replies in flight count against maxmemory on Redis 7.0, not on Valkey 9, and the
simulator evicts for them as the server it models does.

The burst: a node full to 4 KiB under its limit (200 values, allkeys-lru), k GETs of
held keys on k connections that arrive while the node is busy (real: `DEBUG SLEEP` on
another connection; simulated: the node paused), so one event-loop pass runs them all
and writes their replies only at its end. Redis 7.0 evicts before every command for
the replies still held: the k-th GET of a 64 KiB value for k-1 blocks of 57,344 B.
Before the simulator modelled this (`lab/sim/replies.py`) it evicted nothing at 64 KiB
where redis-server 7.0.15 evicted 21 keys for 32 GETs.
"""

from __future__ import annotations

import itertools
import socket
import time

import pytest
import redis
import simpy

from lab.codec import encode
from lab.core import Versioned
from lab.processes import HOST
from lab.redis.binaries import ServerBinary, available_binaries
from lab.redis.server import start_server
from lab.sim.cluster import SimCluster
from lab.sim.memory import RedisMemory
from lab.sim.runtime import SimRuntime
from lab.sim.valkey_memory import ValkeyMemory

KEYS = 200
SLACK = 4096
"""Bytes the full node is under its limit before the burst."""
SLEEP = 1.0
"""How long the real server is kept busy (DEBUG SLEEP) while the burst arrives."""
BINARIES = available_binaries()


class LateBurst(Exception):
    """This process was descheduled while it sent the burst: a busy machine, not a result."""


def real_burst(binary: ServerBinary, size: int, k: int, tries: int = 3) -> int:
    """Keys a real server evicts for k GETs of `size`-byte values run in one pass: the
    GETs must all be sent while it sleeps. Beside CPU hogs this process once took
    longer than a 0.3 s sleep to send 32, some ran in a later pass and the server
    evicted 22 keys instead of 26-29; so the sleep is longer and a burst sent late is
    made again (on a fresh server)."""
    for attempt in range(tries):
        try:
            return _burst_once(binary, size, k)
        except LateBurst:
            if attempt == tries - 1:
                raise
    raise AssertionError("unreachable")


def _burst_once(binary: ServerBinary, size: int, k: int) -> int:
    with start_server(binary=binary, save="", appendonly="no") as server:
        control = redis.Redis(host=HOST, port=server.port)
        socks: list[socket.socket] = []
        try:
            control.config_set("maxmemory-policy", "allkeys-lru")
            control.config_set("maxmemory-clients", 1 << 40)  # as the lab sets them
            control.execute_command("DEBUG", "REPLYBUFFER", "resizing", 0)  # type: ignore[no-untyped-call]
            for _ in range(k + 1):  # every connection open (and its buffers) before
                s = socket.create_connection((HOST, server.port), timeout=10)
                s.sendall(b"PING\r\n")
                assert s.recv(64) == b"+PONG\r\n"
                socks.append(s)
            sleeper, readers = socks[0], socks[1:]
            sleeper.sendall(b"DEBUG SLEEP 0\r\n")  # its first use allocates: before the limit
            assert sleeper.recv(64) == b"+OK\r\n"
            value = encode(Versioned(1, size))
            pipe = control.pipeline(transaction=False)
            for i in range(KEYS):
                pipe.set(f"key:{i}", value)
            pipe.execute()
            control.config_set("maxmemory", int(control.info("memory")["used_memory"]) + SLACK)
            before = int(control.info("stats")["evicted_keys"])
            sleeper.sendall(f"DEBUG SLEEP {SLEEP}\r\n".encode())
            sent = time.monotonic()
            for i, s in enumerate(readers):  # the most recently written: still held
                s.sendall(f"GET key:{KEYS - 1 - i}\r\n".encode())
            late = time.monotonic() - sent > SLEEP / 2  # some may have missed the pass
            for s in readers:
                reply = b""
                while not (reply.startswith(b"$-1") or len(reply) >= len(value) + 8):
                    reply += s.recv(1 << 20)
            assert sleeper.recv(64) == b"+OK\r\n"
            if late:
                raise LateBurst(f"sending {k} GETs took over {SLEEP / 2} s")
            return int(control.info("stats")["evicted_keys"]) - before
        finally:
            for s in socks:
                s.close()
            control.close()


def simulated_burst(model: RedisMemory, size: int, k: int) -> int:
    """The same burst on a simulated node counting bytes with `model`."""
    env = simpy.Environment()
    rt = SimRuntime(env)
    cluster = SimCluster(
        env,
        nodes=1,
        capacity=None,
        eviction="allkeys-lru",
        sharding="ketama",
        rtt=itertools.repeat(0.0002).__next__,
        service=itertools.repeat(0.00002).__next__,
        budget=1 << 40,
        memory=model,
        timeout=2.0,
    )
    node = cluster.nodes[0]
    store = node.store
    assert store.memory is not None
    for i in range(KEYS):
        store.set(f"key:{i}", Versioned(1, size), None, 0.0)
    store.budget = store.memory.budget = store.memory.used + SLACK

    async def get(name: str) -> None:
        await cluster.get(name)

    async def burst() -> None:
        node.pause(SLEEP, rt.now())
        for i in range(k):
            rt.spawn(get(f"key:{KEYS - 1 - i}"))
        await rt.sleep(SLEEP + 1.0)

    rt.run(burst())
    return store.evictions


@pytest.mark.parametrize("binary", BINARIES, ids=[b.label for b in BINARIES])
@pytest.mark.parametrize(("size", "k"), [(65536, 32), (65536, 8), (16384, 32)])
def test_replies_in_flight_evict_as_on_the_server(binary: ServerBinary, size: int, k: int) -> None:
    real = real_burst(binary, size, k)
    model = ValkeyMemory() if binary.flavor == "valkey" else RedisMemory()
    sim = simulated_burst(model, size, k)
    print(f"{binary.label} {size} B x{k}: real {real} simulated {sim}")
    if binary.flavor == "valkey":
        assert real <= 2 and sim == 0  # Valkey 9 does not count them (Redis: 6-29 here)
        return
    assert real >= (k - 1) // 2  # the mechanism is there: about 0.7-1 key per reply
    # sampled LRU may evict a key before its GET runs (a nil reply holds nothing), and
    # the server may evict one more for an allocation of its own: 26-29 real at 16 KiB
    assert abs(sim - real) <= max(2, 0.15 * real), (real, sim)


def test_replies_are_not_counted_below_a_reply_buffer() -> None:
    """A GET whose reply fits the connection's 16 KiB buffer holds nothing."""
    assert simulated_burst(RedisMemory(), 16000, 32) == 0
