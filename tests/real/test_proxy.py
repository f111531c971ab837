"""The fault proxy against real servers: pass-through, latency, partitions, cleanup.

Plain redis-py clients with short timeouts and no retries, so each fault shows
exactly what a client would see. The server binary follows CACHELAB_SERVER.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest
import redis

from lab.netfault import FaultProxy, ProxyError
from lab.processes import HOST, ServerNotFound, process_alive
from lab.redis.binaries import find_server_binary
from lab.redis.server import RedisServer, start_server
from lab.scenario import Distribution
from tests.helpers import fast_client, wait_gone


@pytest.fixture(scope="module")
def node() -> Iterator[RedisServer]:
    """One server for the whole module (faults are per proxy, the server stays clean)."""
    try:
        binary = find_server_binary()
    except ServerNotFound as exc:
        pytest.skip(str(exc))
    with start_server(binary=binary) as started:
        yield started


@pytest.fixture
def proxy(node: RedisServer) -> Iterator[FaultProxy]:
    """A started proxy in front of `node`; its process is gone afterwards, pass or fail."""
    started = FaultProxy([(node.host, node.port)])
    try:
        started.start()
        yield started
    finally:
        started.close()
    assert started.pid is not None and not process_alive(started.pid)


def timed_ping(c: redis.Redis) -> float:
    start = time.perf_counter()
    assert c.ping()
    return time.perf_counter() - start


def test_pass_through_keeps_commands_pipelines_and_large_values(proxy: FaultProxy) -> None:
    c = fast_client(proxy.ports[0])
    try:
        assert c.set("pt:a", b"1")
        assert c.get("pt:a") == b"1"
        pipe = c.pipeline(transaction=False)
        for i in range(2000):
            pipe.set(f"pt:k{i}", i)
        for i in range(2000):
            pipe.get(f"pt:k{i}")
        replies = pipe.execute()
        assert replies[:2000] == [True] * 2000
        assert replies[2000:] == [str(i).encode() for i in range(2000)]
        big = os.urandom(1 << 20)
        assert c.set("pt:big", big)
        assert c.get("pt:big") == big
    finally:
        c.close()
    assert proxy.status()[0]["partition"] is None


def test_constant_latency_delays_each_round_trip_until_heal(proxy: FaultProxy) -> None:
    """Every round trip pays the delay; after the heal none does. On a busy machine a
    round trip may also wait for a CPU, so "not delayed" means faster than the delay
    (the fastest of three), and a delayed one is at most a scheduling hiccup slower."""
    c = fast_client(proxy.ports[0])
    try:
        assert min(timed_ping(c) for _ in range(3)) < 0.05
        proxy.add_latency(0, 0.05)
        assert proxy.status()[0]["latency"] is True
        delayed = [timed_ping(c) for _ in range(3)]
        assert all(elapsed >= 0.05 for elapsed in delayed), delayed
        assert min(delayed) < 0.05 + 0.15, delayed
        proxy.heal(0)
        assert min(timed_ping(c) for _ in range(3)) < 0.05
    finally:
        c.close()


def test_downstream_latency_delays_pubsub_messages_in_order(
    proxy: FaultProxy, node: RedisServer
) -> None:
    """direction="down": a subscriber behind the proxy gets each message 80 ms late, in
    order; messages published while the fault lasted still arrive late after the heal."""
    subscriber = fast_client(proxy.ports[0]).pubsub(ignore_subscribe_messages=True)
    publisher = fast_client(node.port)
    try:
        subscriber.subscribe("down")
        assert subscriber.get_message(timeout=2) is None  # the confirmation, skipped
        proxy.add_latency(0, 0.08, direction="down")
        assert proxy.status()[0]["latency_down"] is True
        sent = time.perf_counter()
        for i in range(20):
            publisher.publish("down", i)
        # heal only once the proxy holds all 20 (else a message still on its way from
        # the server would race the heal and pass undelayed)
        resp = b"*3\r\n$7\r\nmessage\r\n$4\r\ndown\r\n$%d\r\n%d\r\n"
        expected = sum(len(resp % (len(str(i)), i)) for i in range(20))
        deadline, peak = time.monotonic() + 2.0, 0
        while time.monotonic() < deadline:
            held = proxy.status()[0]["held_down"]
            if held >= expected or held < peak:  # all held, or already being released
                break
            peak = held
        proxy.heal(0)
        got: list[bytes] = []
        first = None
        while len(got) < 20 and time.perf_counter() - sent < 3:
            message = subscriber.get_message(timeout=1)
            if message is not None:
                first = first or time.perf_counter() - sent
                got.append(message["data"])
        assert got == [str(i).encode() for i in range(20)]
        # at least the delay; the upper bound leaves room for the status polling above
        # and a busy CPU (it only shows the messages were not held until some timeout)
        assert first is not None and 0.08 <= first < 1.0
        arrivals = []
        for _ in range(3):  # healed: faster than the delay (the fastest of three)
            sent = time.perf_counter()
            publisher.publish("down", "after")
            message = None
            while message is None and time.perf_counter() - sent < 2:
                message = subscriber.get_message(timeout=1)
            assert message is not None and message["data"] == b"after"
            arrivals.append(time.perf_counter() - sent)
        assert min(arrivals) < 0.08, arrivals
    finally:
        subscriber.close()
        publisher.close()


def test_sampled_latency_preserves_order(proxy: FaultProxy) -> None:
    proxy.add_latency(
        0, Distribution(distribution="uniform", low=0.0, high=0.02), seed=7, stream="t.order"
    )
    c = fast_client(proxy.ports[0])
    try:
        c.delete("order:pipe", "order:raw")
        pipe = c.pipeline(transaction=False)
        for _ in range(100):
            pipe.incr("order:pipe")
        assert pipe.execute() == list(range(1, 101))
    finally:
        c.close()
    # One command per chunk, so each gets its own sample: a reordering proxy would
    # deliver them shuffled.
    with socket.create_connection((HOST, proxy.ports[0]), timeout=2) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(100):
            sock.sendall(b"*2\r\n$4\r\nINCR\r\n$9\r\norder:raw\r\n")
            time.sleep(0.0005)
        expected = b"".join(b":%d\r\n" % i for i in range(1, 101))
        received = b""
        while len(received) < len(expected):
            chunk = sock.recv(65536)
            assert chunk, "proxy closed the connection"
            received += chunk
        assert received == expected


def test_partition_refuse_resets_and_refuses_until_heal(proxy: FaultProxy) -> None:
    port = proxy.ports[0]
    c = fast_client(port)
    try:
        assert c.ping()
        proxy.partition(0, "refuse")
        start = time.perf_counter()
        fresh = fast_client(port)
        with pytest.raises(redis.ConnectionError):
            fresh.ping()
        fresh.close()
        assert time.perf_counter() - start < 1.0  # refused, not the client's 2 s timeout
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((HOST, port), timeout=1).close()
        with pytest.raises(redis.ConnectionError):
            c.ping()
        proxy.heal(0)
        assert proxy.ports == [port]
        assert c.ping()  # same client: redis-py reconnects, on the same port
    finally:
        c.close()


def test_partition_hang_times_out_then_heals(proxy: FaultProxy) -> None:
    c = fast_client(proxy.ports[0], timeout=0.3)
    try:
        assert c.ping()
        proxy.partition(0, "hang")
        start = time.perf_counter()
        with pytest.raises(redis.TimeoutError):
            c.ping()
        assert 0.25 <= time.perf_counter() - start < 1.0
        # New connections are accepted but nothing comes back.
        stuck = socket.create_connection((HOST, proxy.ports[0]), timeout=0.2)
        stuck.sendall(b"PING\r\n")
        with pytest.raises(TimeoutError):
            stuck.recv(16)
        proxy.heal(0)
        # The connection opened during the hang is reset, not revived.
        stuck.settimeout(2)
        try:
            assert stuck.recv(16) == b""
        except ConnectionResetError:
            pass
        finally:
            stuck.close()
        assert c.ping()
    finally:
        c.close()


def test_several_targets_are_independent_and_retargetable(node: RedisServer) -> None:
    with start_server(binary=node.binary) as other:
        node.client().set("which", "first")
        other.client().set("which", "second")
        with FaultProxy([(node.host, node.port), (other.host, other.port)]) as proxy:
            first, second = (fast_client(port) for port in proxy.ports)
            try:
                assert first.get("which") == b"first"
                assert second.get("which") == b"second"
                proxy.partition(1, "refuse")
                assert first.get("which") == b"first"
                with pytest.raises(redis.ConnectionError):
                    second.get("which")
                proxy.heal(1)
                raw = socket.create_connection((HOST, proxy.ports[0]), timeout=2)
                try:
                    raw.sendall(b"PING\r\n")
                    assert raw.recv(16) == b"+PONG\r\n"
                    proxy.retarget(0, other.host, other.port)
                    with pytest.raises(ConnectionResetError):
                        raw.recv(16)  # connections to the old target are reset
                finally:
                    raw.close()
                # redis-py notices the reset connection at checkout and reconnects, unless
                # the reset is still on its way then: one failed command at most
                try:
                    got = first.get("which")
                except redis.ConnectionError:
                    got = first.get("which")
                assert got == b"second"
            finally:
                first.close()
                second.close()


def test_close_stops_the_process_and_the_ports(node: RedisServer) -> None:
    proxy = FaultProxy([(node.host, node.port)])
    try:
        [port] = proxy.start()
        pid = proxy.pid
        assert pid is not None and process_alive(pid)
    finally:
        proxy.close()
    assert not proxy.alive
    assert wait_gone([pid], timeout=1.0) == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, port), timeout=1).close()
    with pytest.raises(ProxyError):
        proxy.heal(0)
    proxy.close()  # idempotent


def test_proxy_dies_with_a_killed_parent(node: RedisServer) -> None:
    """SIGKILL the owner: the proxies go too, whichever thread started them."""
    script = textwrap.dedent(
        f"""
        import json, sys, threading
        from lab.netfault import FaultProxy
        target = [("{node.host}", {node.port})]
        main = FaultProxy(target)
        main.start()
        worker = FaultProxy(target)
        thread = threading.Thread(target=worker.start)
        thread.start()
        thread.join()
        print(json.dumps([main.pid, worker.pid]), flush=True)
        sys.stdin.read()
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    pids: list[int] = []
    try:
        assert parent.stdout is not None
        pids = json.loads(parent.stdout.readline())
        assert len(pids) == 2 and all(process_alive(pid) for pid in pids)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=5)
        assert wait_gone(pids) == []
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=5)
        for pid in pids:
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)
