"""A Redis Cluster of real servers the lab starts and forms itself (no redis-cli).

Used for `sharding: slots` topologies with replicas: slots are split as
``redis-cli --cluster create`` does (so node i owns the same keys as in the
simulator), replicas are attached with CLUSTER REPLICATE, and every node
must agree the cluster is ``ok`` before a run starts.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self

import redis
import redis.cluster

from lab.processes.errors import ServerError
from lab.processes.ports import HOST
from lab.processes.server import start_many, stop_many
from lab.redis.binaries import ServerBinary, find_server_binary
from lab.redis.server import ConfigValue, RedisServer, control_client, merge_config
from lab.sharding import slot_ranges

__all__ = ["CLUSTER_SLOTS", "ClusterError", "RedisCluster", "start_cluster"]

CLUSTER_SLOTS: Final = 16384


class ClusterError(ServerError):
    """A cluster could not be formed (or did not become healthy) in time."""


def _parse_info_text(raw: Any) -> dict[str, str]:
    """CLUSTER INFO may come back as text or (some client versions) a dict."""
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    result: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep:
            result[key] = value
    return result


@dataclass(frozen=True)
class _NodeLine:
    """One line of CLUSTER NODES."""

    node_id: str
    port: int
    flags: frozenset[str]
    master_id: str | None
    slots: tuple[str, ...]


def _parse_cluster_nodes(raw: Any) -> list[_NodeLine]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    if not isinstance(text, str):
        raise ClusterError(f"unexpected CLUSTER NODES reply: {raw!r}")
    nodes: list[_NodeLine] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        address = parts[1].split("@", 1)[0]
        port_text = address.rsplit(":", 1)[-1]
        nodes.append(
            _NodeLine(
                node_id=parts[0],
                port=int(port_text) if port_text.isdigit() else 0,
                flags=frozenset(parts[2].split(",")),
                master_id=None if parts[3] == "-" else parts[3],
                slots=tuple(parts[8:]),
            )
        )
    return nodes


class RedisCluster:
    """A Redis Cluster of real servers, created without redis-cli.

    Steps: start all nodes with ``cluster-enabled yes`` (own ``nodes.conf``
    and ``--cluster-port`` each), give each a distinct config epoch, assign
    contiguous slot ranges to the primaries (ADDSLOTSRANGE, falling back to
    ADDSLOTS), CLUSTER MEET everyone, CLUSTER REPLICATE the replicas, then
    wait until every node agrees the cluster is ``ok``.

    ``primaries``/``replicas`` describe the topology as created; after a
    failover use :meth:`current_primaries`.
    """

    def __init__(
        self,
        primaries: int = 3,
        replicas: int = 0,
        *,
        node_timeout_ms: int = 2000,
        config: Mapping[str, ConfigValue] | None = None,
        binary: ServerBinary | None = None,
        ready_timeout: float = 20.0,
        die_with_parent: bool | None = None,
    ) -> None:
        if primaries < 1 or replicas < 0:
            raise ValueError("need primaries >= 1 and replicas >= 0")
        self.binary = binary or find_server_binary()
        self.ready_timeout = ready_timeout
        merged = merge_config(config, {})
        merged.setdefault("cluster-node-timeout", node_timeout_ms)
        self.node_timeout_ms = int(merged["cluster-node-timeout"])
        total = primaries * (1 + replicas)
        self.nodes: list[RedisServer] = [
            RedisServer(
                merged, binary=self.binary, cluster_enabled=True, die_with_parent=die_with_parent
            )
            for _ in range(total)
        ]
        self.primaries: list[RedisServer] = self.nodes[:primaries]
        self.replicas: list[RedisServer] = self.nodes[primaries:]
        self._replicas_per_primary = replicas
        self._ids: dict[RedisServer, str] = {}

    # -- introspection -----------------------------------------------------

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [(HOST, node.port) for node in self.nodes]

    def replicas_of(self, primary: RedisServer) -> list[RedisServer]:
        """Replicas assigned to ``primary`` at creation time."""
        index = self.primaries.index(primary)
        r = self._replicas_per_primary
        return self.replicas[index * r : (index + 1) * r]

    def node_id(self, node: RedisServer) -> str:
        """The cluster node id (stable across :meth:`RedisServer.restart`)."""
        return self._ids[node]

    def client(self, **kwargs: Any) -> redis.cluster.RedisCluster:
        """A redis-py cluster client; the caller closes it."""
        nodes = [
            redis.cluster.ClusterNode(host, port)  # type: ignore[no-untyped-call]
            for host, port in self.startup_nodes
        ]
        return redis.cluster.RedisCluster(startup_nodes=nodes, **kwargs)

    def current_primaries(self) -> list[RedisServer]:
        """Nodes that currently serve slots as primaries (after failovers too)."""
        by_id = {node_id: node for node, node_id in self._ids.items()}
        for node in self._reachable():
            lines = _parse_cluster_nodes(self._cmd(node, "CLUSTER", "NODES"))
            return [
                by_id[line.node_id]
                for line in lines
                if "master" in line.flags
                and "fail" not in line.flags
                and line.slots
                and line.node_id in by_id
            ]
        raise ClusterError("no reachable cluster node")

    def __repr__(self) -> str:
        return (
            f"<RedisCluster {self.binary.label} primaries={len(self.primaries)} "
            f"replicas={len(self.replicas)} ports={[n.port for n in self.nodes]}>"
        )

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Self:
        """Start all nodes and form the cluster; on any failure stop them all."""
        try:
            start_many(self.nodes)
            self._create()
        except BaseException:
            stop_many(self.nodes, quiet=True)
            raise
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every node (signals all first, so it is fast)."""
        stop_many(self.nodes, timeout=timeout)

    def __enter__(self) -> Self:
        if not any(node.alive for node in self.nodes):
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def wait_ok(self, timeout: float | None = None) -> None:
        """Wait until every reachable node reports ``cluster_state:ok`` with
        all 16384 slots assigned and served (use after faults/failovers)."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.ready_timeout)
        while True:
            problems = self._health_problems(strict=False)
            if not problems:
                return
            if time.monotonic() > deadline:
                raise ClusterError("cluster not ok in time: " + "; ".join(problems))
            time.sleep(0.05)

    # -- internals -----------------------------------------------------------

    def _cmd(self, node: RedisServer, *args: str | int, timeout: float = 2.0) -> Any:
        client = control_client(node.port, timeout)
        try:
            return client.execute_command(*args)  # type: ignore[no-untyped-call]
        finally:
            client.close()

    def _reachable(self) -> Iterator[RedisServer]:
        return (node for node in self.nodes if node.alive and not node.paused)

    def _create(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        for node in self.nodes:
            self._ids[node] = str(self._cmd(node, "CLUSTER", "MYID"))
        # Distinct config epochs avoid slow epoch-collision resolution (as redis-cli).
        for epoch, node in enumerate(self.nodes, start=1):
            with contextlib.suppress(redis.ResponseError):
                self._cmd(node, "CLUSTER", "SET-CONFIG-EPOCH", epoch)
        for node, (first, last) in zip(
            self.primaries, slot_ranges(len(self.primaries)), strict=True
        ):
            self._add_slots(node, first, last)
        # every pair meets directly: meeting only the first node, the others learn of
        # each other by gossip (~0.9 s for 4 nodes; ~0.15 s so)
        for i, node in enumerate(self.nodes):
            for other in self.nodes[i + 1 :]:
                bus = other.cluster_port if other.cluster_port is not None else other.port + 10000
                self._cmd(node, "CLUSTER", "MEET", HOST, other.port, bus)
        self._wait_until(deadline, self._mesh_problems, "nodes did not all meet")
        r = self._replicas_per_primary
        for index, primary in enumerate(self.primaries):
            for replica in self.replicas[index * r : (index + 1) * r]:
                self._replicate(replica, self._ids[primary], deadline)
        self._wait_until(
            deadline, lambda: self._health_problems(strict=True), "cluster did not become ok"
        )

    def _add_slots(self, node: RedisServer, first: int, last: int) -> None:
        try:
            self._cmd(node, "CLUSTER", "ADDSLOTSRANGE", first, last)
            return
        except redis.ResponseError as exc:
            if "unknown" not in str(exc).lower():
                raise
        for start in range(first, last + 1, 1000):  # Redis < 7: ADDSLOTS in batches
            self._cmd(node, "CLUSTER", "ADDSLOTS", *range(start, min(start + 1000, last + 1)))

    def _replicate(self, replica: RedisServer, primary_id: str, deadline: float) -> None:
        while True:
            try:
                self._cmd(replica, "CLUSTER", "REPLICATE", primary_id)
                return
            except redis.ResponseError as exc:
                if time.monotonic() > deadline:
                    raise ClusterError(
                        f"CLUSTER REPLICATE on port {replica.port} failed: {exc}"
                    ) from exc
                time.sleep(0.05)

    def _wait_until(self, deadline: float, check: Callable[[], list[str]], what: str) -> None:
        while True:
            problems = check()
            if not problems:
                return
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"{what} within {self.ready_timeout:.0f}s ({self.binary.label}): "
                    + "; ".join(problems[:10])
                )
            time.sleep(0.05)

    def _mesh_problems(self) -> list[str]:
        """Every node knows every other node, with the handshake finished."""
        expected = set(self._ids.values())
        problems: list[str] = []
        for node in self.nodes:
            try:
                lines = _parse_cluster_nodes(self._cmd(node, "CLUSTER", "NODES"))
            except (redis.RedisError, OSError) as exc:
                problems.append(f"{node.port}: {exc}")
                continue
            known = {
                line.node_id
                for line in lines
                if not line.flags & {"handshake", "noaddr", "fail", "fail?"}
            }
            if not expected <= known:
                problems.append(f"{node.port} knows {len(known & expected)}/{len(expected)}")
        return problems

    def _health_problems(self, *, strict: bool) -> list[str]:
        """Why the cluster is not healthy yet (empty list = healthy).

        ``strict`` (at creation): every node up, knows all nodes, agrees on the
        replica assignment, and every replica's link to its primary is up.
        """
        problems: list[str] = []
        nodes = self.nodes if strict else list(self._reachable())
        if not nodes:
            return ["no reachable node"]
        for node in nodes:
            try:
                info = _parse_info_text(self._cmd(node, "CLUSTER", "INFO"))
            except (redis.RedisError, OSError) as exc:
                problems.append(f"{node.port}: {exc}")
                continue
            if info.get("cluster_state") != "ok":
                problems.append(f"{node.port} cluster_state={info.get('cluster_state')}")
            for key in ("cluster_slots_assigned", "cluster_slots_ok"):
                if info.get(key) != str(CLUSTER_SLOTS):
                    problems.append(f"{node.port} {key}={info.get(key)}")
            if strict and info.get("cluster_known_nodes") != str(len(self.nodes)):
                problems.append(f"{node.port} known_nodes={info.get('cluster_known_nodes')}")
        if strict and not problems:
            problems += self._replication_problems()
        return problems

    def _replication_problems(self) -> list[str]:
        problems: list[str] = []
        r = self._replicas_per_primary
        expected_master = {
            self._ids[replica]: self._ids[primary]
            for index, primary in enumerate(self.primaries)
            for replica in self.replicas[index * r : (index + 1) * r]
        }
        for node in self.nodes:
            lines = _parse_cluster_nodes(self._cmd(node, "CLUSTER", "NODES"))
            for line in lines:
                want = expected_master.get(line.node_id)
                if want is not None and line.master_id != want:
                    problems.append(f"{node.port} does not yet see {line.port} as replica")
        for replica in self.replicas:
            info = replica.info("replication")
            if info.get("master_link_status") != "up":
                problems.append(
                    f"{replica.port} master_link_status={info.get('master_link_status')}"
                )
        return problems


def start_cluster(
    primaries: int = 3,
    replicas: int = 0,
    *,
    node_timeout_ms: int = 2000,
    config: Mapping[str, ConfigValue] | None = None,
    binary: ServerBinary | None = None,
    ready_timeout: float = 20.0,
    **options: ConfigValue,
) -> RedisCluster:
    """Start a ready cluster of ``primaries * (1 + replicas)`` nodes."""
    return RedisCluster(
        primaries,
        replicas,
        node_timeout_ms=node_timeout_ms,
        config=merge_config(config, options),
        binary=binary,
        ready_timeout=ready_timeout,
    ).start()
