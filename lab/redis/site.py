"""Where a real cell runs: the servers, the fault proxy in front of some of them, and
the memory limits matched to the capacity, set up before the run and torn down after.

Everything here is synchronous (fork, CONFIG SET, calibration writes): it
happens before the run's event loop starts and after it ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import redis

from lab.backend import CellSkipped
from lab.codec import encode
from lab.core import Versioned
from lab.netfault import FaultProxy
from lab.netfault.faults import Placement, placement
from lab.redis.binaries import ServerBinary
from lab.redis.capacity import SAMPLE_KEYS, Calibration, calibrate, configure_eviction
from lab.redis.deployment import (
    Address,
    Deployment,
    DeploymentError,
    Target,
    connect_external,
    start_local,
)
from lab.scenario import Cell, Scenario
from lab.sharding import key_name, key_slot, router
from lab.workload.values import value_sizes

POLICIES = {"lru": "allkeys-lru", "random": "allkeys-random"}
"""Scenario eviction -> maxmemory-policy (FIFO has no Redis equivalent)."""
MAXMEMORY_SAMPLES = 10


@dataclass
class Site:
    """A cell's servers and what stands in front of them."""

    deployment: Deployment
    proxy: FaultProxy | None = None
    placement: Placement = field(default_factory=Placement)
    """Which nodes (and the bus subscriber) the proxy fronts, for the network faults."""
    calibrations: list[Calibration] = field(default_factory=list)
    policy: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def translate(self) -> dict[Address, Address]:
        """Where cache clients connect for a proxied node's address."""
        if self.proxy is None:
            return {}
        addresses, proxied = self.proxy.addresses, self.placement.proxied
        return {self.deployment.addresses[node]: addresses[i] for node, i in proxied.items()}

    @property
    def bus_translate(self) -> dict[Address, Address]:
        """Where the bus subscriber connects (through the proxy for bus_delay)."""
        bus_via = self.placement.bus_via
        if self.proxy is None or bus_via is None:
            return {}
        return {self.deployment.bus_addresses()[0]: self.proxy.addresses[bus_via]}


def policy_for(scenario: Scenario) -> str | None:
    """The maxmemory-policy of the scenario's eviction (None: no capacity set)."""
    topo = scenario.topology
    return POLICIES.get(topo.eviction) if topo.capacity is not None else None


@contextlib.contextmanager
def open_site(
    scenario: Scenario, cell: Cell, target: Target | None, binary: ServerBinary | None
) -> Iterator[Site]:
    """Start (or connect to) the servers, put the proxy where faults need it and set
    the memory limits; stop what the lab started, whatever happens."""
    deployment, note = _deployment(scenario, target, binary)
    site = Site(deployment, policy=policy_for(scenario), notes=[note] if note else [])
    try:
        _start_proxy(site, scenario)
        controls = [site.deployment.control(i) for i in range(len(site.deployment))]
        try:
            if not site.deployment.owned:
                assert target is not None
                try:
                    require_empty(controls, site.deployment, target)
                except DeploymentError as exc:
                    raise CellSkipped(str(exc)) from None
            _calibrate(site, scenario, cell, controls)
            for control in controls:
                control.config_resetstat()
            try:
                yield site
            finally:
                if not site.deployment.owned:
                    _empty(site.deployment)
        finally:
            for control in controls:
                control.close()
    finally:
        try:
            if site.proxy is not None:
                site.proxy.close()
        finally:
            site.deployment.stop()


def _deployment(
    scenario: Scenario, target: Target | None, binary: ServerBinary | None
) -> tuple[Deployment, str | None]:
    """The servers of the topology, and a note saying what they are."""
    topo = scenario.topology
    if target is None:
        assert binary is not None
        window = max((f.duration for f in scenario.faults), default=0.0)
        cluster = topo.sharding == "slots"
        started = start_local(
            topo.nodes, topo.replicas, cluster=cluster, binary=binary, max_fault_window=window
        )
        note = f"Redis Cluster: {topo.nodes} primaries x {1 + topo.replicas} servers"
        return started, note if cluster else None
    try:
        connected = connect_external(target, topo.nodes)
    except DeploymentError as exc:
        raise CellSkipped(str(exc)) from None
    return connected, f"on {target.label} (servers the lab did not start)"


def _start_proxy(site: Site, scenario: Scenario) -> None:
    """Latency and partition faults go through a real TCP proxy in front of their nodes;
    bus_delay through one in front of the bus subscriber."""
    deployment = site.deployment
    site.placement = placement(scenario.faults, deployment.addresses, deployment.bus_addresses()[0])
    if site.placement.targets:
        site.proxy = FaultProxy(site.placement.targets)
        site.proxy.start()


def _calibrate(site: Site, scenario: Scenario, cell: Cell, controls: list[redis.Redis]) -> None:
    """Measure each node's data budget for the capacity and set its limit (and its
    replicas' too)."""
    topo, deployment, policy = scenario.topology, site.deployment, site.policy
    if topo.capacity_keys is None or policy is None:
        return
    names = _node_keys(deployment, scenario, min(topo.capacity_keys, SAMPLE_KEYS))
    value = encode(Versioned(1, value_sizes(scenario.keyspace, cell.seed).typical))
    for i, control in enumerate(controls):
        calibration = calibrate(
            control,
            names[i],
            lambda _name: value,
            capacity=topo.capacity_keys,
            policy=policy,
            samples=MAXMEMORY_SAMPLES,
            ttl=scenario.strategies[cell.strategy].ttl,
            uniform=True,
        )
        site.calibrations.append(calibration)
        for address in deployment.replica_addresses(i):
            configure(address, deployment, policy, calibration.maxmemory)
    budgets = [c.budget for c in site.calibrations]
    site.notes.append(
        f"capacity {topo.capacity_keys} keys/node -> data budget {budgets} bytes "
        f"(~{site.calibrations[0].bytes_per_key:.0f} B/key measured); maxmemory = "
        "non-data memory (client buffers, ...) + budget, held during the run"
    )


def _node_keys(deployment: Deployment, scenario: Scenario, count: int) -> list[list[str]]:
    """The first `count` key names every node owns (the run's own names, routed as the
    cache routes them: a budget measured on them fits the run's keys byte for byte)."""
    n = len(deployment)
    owners = deployment.slot_owner
    route = (
        router(scenario.topology.sharding, n)
        if owners is None
        else (lambda name: owners[key_slot(name)])
    )
    names: list[list[str]] = [[] for _ in range(n)]
    key = 0
    while min(len(node) for node in names) < count:
        name = key_name(key)
        node = names[route(name)]
        if len(node) < count:
            node.append(name)
        key += 1
    return names


def configure(address: Address, deployment: Deployment, policy: str, maxmemory: int) -> None:
    """The eviction settings of a primary on another server (a replica, for after a
    failover, or a restarted node: CONFIG SET does not survive a restart)."""
    client = redis.Redis(
        host=address[0], port=address[1], socket_timeout=5.0, **deployment.connection
    )
    try:
        configure_eviction(client, policy, MAXMEMORY_SAMPLES)
        client.config_set("maxmemory", maxmemory)
    finally:
        client.close()


def check_target(target: Target, scenario: Scenario) -> None:
    """Before any run: `target` answers, has the scenario's number of nodes, and its
    databases are empty (or may be flushed). Raises DeploymentError (one line)."""
    deployment = connect_external(target, scenario.topology.nodes)
    controls = [deployment.control(i) for i in range(len(deployment))]
    try:
        if not target.allow_destructive:
            require_empty(controls, deployment, target)
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise DeploymentError(f"cannot reach {target.label}: {exc}") from None
    finally:
        for control in controls:
            control.close()


def require_empty(controls: list[redis.Redis], deployment: Deployment, target: Target) -> None:
    """Someone else's database must start empty (the run starts cold and is emptied
    afterwards); `--allow-destructive` flushes it instead."""
    for i, control in enumerate(controls):
        held = int(control.dbsize())
        if not held:
            continue
        if target.allow_destructive:
            control.flushdb()
            continue
        host, port = deployment.addresses[i]
        raise DeploymentError(
            f"{host}:{port} holds {held} keys: the lab needs an empty database "
            "(pick another with redis://host:port/<db>) or --allow-destructive to flush it"
        )


def _empty(deployment: Deployment) -> None:
    """Remove what the run left in someone else's (empty at the start) database."""
    for i in range(len(deployment)):
        with contextlib.suppress(redis.RedisError, OSError):
            control = deployment.control(i)
            try:
                names = list(control.scan_iter(count=1000))
                for start in range(0, len(names), 1000):
                    if deployment.cluster:  # one slot per command in a cluster
                        for name in names[start : start + 1000]:
                            control.unlink(name)
                    else:
                        control.unlink(*names[start : start + 1000])
            finally:
                control.close()
