"""Where a real run's cache lives: servers the lab starts, or a deployment the user names.

A scenario's topology becomes one of four deployments, all seen the same way
by the backend (node i of the topology, its current address, a control
client, its processes if the lab owns them):

- `LocalShards`: N independent servers the lab starts, client-side hashing
  (ketama, modulo, or slots computed by the client).
- `LocalCluster`: a Redis Cluster the lab starts (`sharding: slots` with
  `replicas`): N primaries with slots split as `redis-cli --cluster create`
  does (so node i owns the same keys as in the simulator), each with its
  replicas. Automatic failover is off (`cluster-replica-no-failover`): the
  `failover` fault decides when a replica takes over, so the election window
  is the scenario's, not the server's timers.
- `ExternalShards` / `ExternalCluster`: someone else's servers, from
  `--redis-url` / `--redis-cluster`. The lab never stops them and refuses to
  change them (flush, CONFIG SET, pause, failover) unless `allow_destructive`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from lab.processes.ports import HOST
from lab.processes.server import ServerGroup
from lab.redis.binaries import ServerBinary
from lab.redis.cluster import RedisCluster, start_cluster
from lab.redis.server import ConfigValue, RedisServer, start_shards
from lab.sharding import SLOTS, slot_ranges

Address = tuple[str, int]

CONTROL_TIMEOUT = 5.0
"""Seconds a control command (INFO, CONFIG SET, CLUSTER ...) may take."""


class DeploymentError(Exception):
    """A named deployment cannot be used as asked (one line, names the fix)."""


@dataclass(frozen=True)
class Target:
    """A deployment the user names on the command line instead of servers the lab starts."""

    urls: tuple[str, ...] = ()
    """`--redis-url`: independent servers, node i = the i-th URL."""
    cluster: tuple[Address, ...] = ()
    """`--redis-cluster`: seed nodes of a Redis Cluster."""
    allow_destructive: bool = False
    """`--allow-destructive`: the lab may flush, reconfigure, pause and fail over."""

    @property
    def label(self) -> str:
        if self.cluster:
            return "cluster " + ",".join(f"{h}:{p}" for h, p in self.cluster)
        return ",".join(self.urls)


def parse_target(
    urls: Sequence[str] | None, cluster: str | None, allow_destructive: bool
) -> Target | None:
    """The `--redis-url` / `--redis-cluster` options as a Target (None: the lab starts its own)."""
    if urls and cluster:
        raise DeploymentError("give --redis-url or --redis-cluster, not both")
    if cluster:
        seeds: list[Address] = []
        for part in cluster.split(","):
            host, sep, port = part.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise DeploymentError(
                    f"--redis-cluster: {part.strip()!r} is not host:port "
                    "(e.g. --redis-cluster 127.0.0.1:7000,127.0.0.1:7001)"
                )
            seeds.append((host, int(port)))
        return Target(cluster=tuple(seeds), allow_destructive=allow_destructive)
    if urls:
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme != "redis" or not parts.hostname:
                raise DeploymentError(
                    f"--redis-url: {url!r} is not a redis://host:port[/db] URL "
                    "(TLS and unix sockets are not supported)"
                )
        return Target(urls=tuple(urls), allow_destructive=allow_destructive)
    if allow_destructive:
        raise DeploymentError(
            "--allow-destructive only applies with --redis-url or --redis-cluster"
        )
    return None


@dataclass
class Deployment:
    """Node i of the topology: where it answers now, and how to reach it for control."""

    addresses: list[Address]
    """Node i's current primary (changes after a failover)."""
    cluster: bool
    owned: bool
    """The lab started these servers: it may kill, pause, flush and reconfigure them."""
    server_label: str
    connection: dict[str, Any] = field(default_factory=dict)
    """Extra connection settings for every node (db, username, password)."""
    slot_owner: list[int] | None = None
    """Cluster: node index serving each of the 16384 slots."""
    suspended: set[int] = field(default_factory=set)
    """Nodes a fault has paused: control commands would block until it ends."""

    def __len__(self) -> int:
        return len(self.addresses)

    def control(self, index: int, *, decode: bool = False) -> redis.Redis:
        """A new synchronous client of node `index`'s current primary; the caller closes it."""
        host, port = self.addresses[index]
        return redis.Redis(
            host=host,
            port=port,
            socket_timeout=CONTROL_TIMEOUT,
            socket_connect_timeout=CONTROL_TIMEOUT,
            decode_responses=decode,
            retry=Retry(NoBackoff(), 0),
            **self.connection,
        )

    def reachable(self, index: int) -> bool:
        """Whether asking node `index` cannot block (not known to be down or paused)."""
        return index not in self.suspended

    def server(self, index: int) -> RedisServer:
        """The process serving node `index` (only for servers the lab started)."""
        raise DeploymentError(f"node {index} is not a server the lab started")

    def replica_addresses(self, index: int) -> list[Address]:
        return []

    def failover(self, index: int) -> None:
        """End of a failover fault: a replica of node `index` takes over its slots."""
        raise DeploymentError("failover needs a Redis Cluster with replicas")

    def bus_addresses(self) -> list[Address]:
        """Where pub/sub runs: node 0 (publisher and subscriber on one server; PUBLISH
        on independent servers reaches only that server's subscribers)."""
        return [self.addresses[0]]

    def stop(self) -> None:
        """Stop what the lab started (nothing for someone else's servers)."""


class LocalShards(Deployment):
    """Independent servers the lab started."""

    def __init__(self, group: ServerGroup[RedisServer]) -> None:
        super().__init__(
            addresses=[(HOST, s.port) for s in group],
            cluster=False,
            owned=True,
            server_label=group[0].binary.label,
        )
        self.group = group

    def reachable(self, index: int) -> bool:
        server = self.group[index]
        return server.alive and not server.paused

    def server(self, index: int) -> RedisServer:
        return self.group[index]

    def stop(self) -> None:
        self.group.stop()


def cluster_config(max_fault_window: float) -> dict[str, ConfigValue]:
    """Settings of a lab cluster: partial coverage keeps the other primaries serving
    while one is down, and replicas never fail over on their own (the fault does)."""
    return {
        "cluster-require-full-coverage": "no",
        "cluster-replica-no-failover": "yes",
        "cluster-node-timeout": max(2000, round((max_fault_window + 2) * 1000)),
    }


class LocalCluster(Deployment):
    """A Redis Cluster the lab started: N primaries, R replicas each."""

    def __init__(self, cluster: RedisCluster) -> None:
        owner = [0] * SLOTS
        for index, (first, last) in enumerate(slot_ranges(len(cluster.primaries))):
            owner[first : last + 1] = [index] * (last - first + 1)
        super().__init__(
            addresses=[(HOST, s.port) for s in cluster.primaries],
            cluster=True,
            owned=True,
            server_label=cluster.binary.label,
            slot_owner=owner,
        )
        self.nodes = cluster
        self.serving = list(cluster.primaries)
        """The server now serving node i's slots."""

    def reachable(self, index: int) -> bool:
        server = self.serving[index]
        return server.alive and not server.paused

    def server(self, index: int) -> RedisServer:
        return self.serving[index]

    def replicas(self, index: int) -> list[RedisServer]:
        return [
            r
            for r in self.nodes.replicas_of(self.nodes.primaries[index])
            if r is not self.serving[index] and r.alive
        ]

    def replica_addresses(self, index: int) -> list[Address]:
        return [(HOST, r.port) for r in self.replicas(index)]

    def failover(self, index: int) -> None:
        """CLUSTER FAILOVER TAKEOVER on the first live replica: it takes the slots at once,
        with whatever it had received when its primary died."""
        candidates = self.replicas(index)
        if not candidates:
            raise DeploymentError(f"node {index} has no live replica to fail over to")
        replica = candidates[0]
        _take_over((HOST, replica.port), "TAKEOVER", CONTROL_TIMEOUT, self.connection)
        self.serving[index] = replica
        self.addresses[index] = (HOST, replica.port)

    def bus_addresses(self) -> list[Address]:
        # PUBLISH reaches every node of a cluster: any live one will do
        return [(HOST, s.port) for s in self.nodes.nodes]

    def stop(self) -> None:
        self.nodes.stop()


def _take_over(replica: Address, how: str, timeout: float, connection: dict[str, Any]) -> None:
    """`CLUSTER FAILOVER <how>` on `replica`, then wait until it is a primary."""
    client = redis.Redis(
        host=replica[0], port=replica[1], socket_timeout=CONTROL_TIMEOUT, **connection
    )
    try:
        client.execute_command("CLUSTER", "FAILOVER", how)  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + timeout
        while client.info("replication").get("role") != "master":
            if time.monotonic() > deadline:
                raise DeploymentError(f"replica {replica[0]}:{replica[1]} did not take over")
            time.sleep(0.01)
    finally:
        client.close()


def _split_url(url: str) -> tuple[Address, dict[str, Any]]:
    parts = urlsplit(url)
    assert parts.hostname is not None
    extra: dict[str, Any] = {}
    db = parts.path.strip("/")
    if db:
        if not db.isdigit():
            raise DeploymentError(f"--redis-url: {url!r}: the path must be a database number")
        extra["db"] = int(db)
    if parts.username:
        extra["username"] = parts.username
    if parts.password:
        extra["password"] = parts.password
    return (parts.hostname, parts.port or 6379), extra


def _server_label(client: redis.Redis) -> str:
    info = client.info("server")
    flavor = "valkey" if "valkey_version" in info else "redis"
    return f"{flavor}-{info.get('valkey_version', info.get('redis_version', '?'))}"


def connect_external(target: Target, nodes: int) -> Deployment:
    """Check that `target` answers and matches a topology of `nodes` nodes."""
    try:
        if target.cluster:
            return _external_cluster(target, nodes)
        return _external_shards(target, nodes)
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise DeploymentError(f"cannot reach {target.label}: {exc}") from None
    except redis.AuthenticationError as exc:
        raise DeploymentError(f"{target.label}: {exc} (give the password in the URL)") from None


def _external_shards(target: Target, nodes: int) -> Deployment:
    pairs = [_split_url(u) for u in target.urls]
    if len(pairs) != nodes:
        raise DeploymentError(
            f"the scenario's topology.nodes is {nodes} but --redis-url names "
            f"{len(pairs)} server(s): give one --redis-url per node"
        )
    settings = [extra for _, extra in pairs]
    if any(s != settings[0] for s in settings):
        raise DeploymentError("--redis-url: every server must use the same db and credentials")
    deployment = Deployment(
        addresses=[address for address, _ in pairs],
        cluster=False,
        owned=False,
        server_label="",
        connection=settings[0],
    )
    control = deployment.control(0, decode=True)
    try:
        if control.info("cluster").get("cluster_enabled") in (1, "1"):
            raise DeploymentError(
                f"{target.urls[0]} is a Redis Cluster node: use --redis-cluster host:port"
            )
        deployment.server_label = _server_label(control)
    finally:
        control.close()
    return deployment


def _external_cluster(target: Target, nodes: int) -> Deployment:
    slots: list[Any] | None = None
    for host, port in target.cluster:
        client = redis.Redis(host=host, port=port, socket_timeout=CONTROL_TIMEOUT)
        try:
            slots = client.execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
            nodes_text = client.execute_command("CLUSTER", "NODES")  # type: ignore[no-untyped-call]
            label = _server_label(client)
            break
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            continue
        except redis.ResponseError as exc:
            raise DeploymentError(f"{host}:{port} is not a Redis Cluster node ({exc})") from None
        finally:
            client.close()
    if not slots:
        raise DeploymentError(f"no node of {target.label} answered CLUSTER SLOTS with slots")
    primaries: list[Address] = []
    owner = [-1] * SLOTS
    for entry in sorted(slots, key=lambda e: int(e[0])):
        first, last, primary = int(entry[0]), int(entry[1]), entry[2]
        host = primary[0].decode() if isinstance(primary[0], bytes) else str(primary[0])
        address = (host or target.cluster[0][0], int(primary[1]))
        if address not in primaries:
            primaries.append(address)
        owner[first : last + 1] = [primaries.index(address)] * (last - first + 1)
    if -1 in owner:
        raise DeploymentError(f"{target.label}: slot {owner.index(-1)} has no primary")
    if len(primaries) != nodes:
        raise DeploymentError(
            f"the scenario's topology.nodes is {nodes} but the cluster at {target.label} "
            f"has {len(primaries)} primaries: set topology.nodes: {len(primaries)}"
        )
    return _ExternalCluster(primaries, label, owner, _replicas_by_primary(nodes_text, host))


def _replicas_by_primary(raw: Any, default_host: str) -> dict[Address, list[Address]]:
    """Live replicas of each primary, from CLUSTER NODES (CLUSTER SLOTS leaves out
    replicas that have not received anything yet)."""
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    address_of: dict[str, Address] = {}
    replica_of: list[tuple[Address, str]] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        host, _, port = parts[1].split("@", 1)[0].rpartition(":")
        address = (host or default_host, int(port))
        address_of[parts[0]] = address
        flags = set(parts[2].split(","))
        if parts[3] != "-" and not flags & {"fail", "fail?", "noaddr", "handshake"}:
            replica_of.append((address, parts[3]))
    found: dict[Address, list[Address]] = {}
    for replica, master in replica_of:
        if master in address_of:
            found.setdefault(address_of[master], []).append(replica)
    return found


class _ExternalCluster(Deployment):
    """Someone else's Redis Cluster."""

    def __init__(
        self,
        primaries: list[Address],
        label: str,
        owner: list[int],
        replicas: dict[Address, list[Address]],
    ) -> None:
        super().__init__(
            addresses=primaries,
            cluster=True,
            owned=False,
            server_label=label,
            slot_owner=owner,
        )
        self._replicas = {i: list(replicas.get(p, [])) for i, p in enumerate(primaries)}

    def replica_addresses(self, index: int) -> list[Address]:
        return list(self._replicas.get(index, []))

    def failover(self, index: int) -> None:
        """CLUSTER FAILOVER FORCE on a replica (the primary may be unreachable)."""
        candidates = self.replica_addresses(index)
        if not candidates:
            raise DeploymentError(f"node {index} of the cluster has no replica")
        host, port = candidates[0]
        _take_over((host, port), "FORCE", 10 * CONTROL_TIMEOUT, self.connection)
        old = self.addresses[index]
        self.addresses[index] = (host, port)
        self._replicas[index] = [a for a in candidates if a != (host, port)] + [old]

    def bus_addresses(self) -> list[Address]:
        extra = [a for i in range(len(self)) for a in self.replica_addresses(i)]
        return list(self.addresses) + extra


def start_local(
    nodes: int,
    replicas: int,
    *,
    cluster: bool,
    binary: ServerBinary,
    max_fault_window: float = 0.0,
) -> Deployment:
    """Start the servers of a topology on free loopback ports."""
    if cluster:
        started = start_cluster(
            nodes, replicas, config=cluster_config(max_fault_window), binary=binary
        )
        return LocalCluster(started)
    return LocalShards(start_shards(nodes, binary=binary))


__all__ = [
    "Address",
    "Deployment",
    "DeploymentError",
    "LocalCluster",
    "LocalShards",
    "Target",
    "cluster_config",
    "connect_external",
    "parse_target",
    "start_local",
]
