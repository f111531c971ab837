"""Where a real cell runs: the servers, the fault proxy in front of some of them, and
the memory limits matched to the capacity, set up before the run and torn down after.

Everything here is synchronous (fork, CONFIG SET, calibration writes): it
happens before the run's event loop starts and after it ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import get_args

import numpy as np
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
from lab.scenario import Cell, Eviction, Scenario
from lab.sharding import key_name, key_slot, router
from lab.workload.values import ValueSizes, value_sizes

REDIS_POLICIES = tuple(
    p for p in get_args(Eviction) if p.startswith(("allkeys-", "volatile-")) or p == "noeviction"
)
"""The scenario's eviction names that are Redis's own maxmemory-policy values."""
POLICIES = {"lru": "allkeys-lru", "random": "allkeys-random"} | {p: p for p in REDIS_POLICIES}
"""Scenario eviction -> maxmemory-policy. Redis's names are themselves; the theory's exact
`lru` and `random` become Redis's sampled `allkeys-lru` and `allkeys-random`; `fifo` has
no Redis equivalent."""
MAXMEMORY_SAMPLES = 10
"""For the theory's exact `lru`: as close to exact as Redis's sampled LRU gets cheaply."""
REDIS_SAMPLES = 5
"""For Redis's own policy names: Redis's default, the one the simulator models."""


def samples_for(scenario: Scenario) -> int:
    """maxmemory-samples for the scenario's eviction."""
    return REDIS_SAMPLES if scenario.topology.eviction in REDIS_POLICIES else MAXMEMORY_SAMPLES


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
                # closed until next needed: idle, the server would free its query buffer
                # 3 s later, mid-run, a fall of non-data memory (capacity.configure_eviction)
                control.connection_pool.disconnect()
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
    """Measure each node's data budget for the capacity (keys or bytes) on the node's own
    keys with their own value sizes, and set its limit (and its replicas' too)."""
    topo, deployment, policy = scenario.topology, site.deployment, site.policy
    if topo.capacity is None or policy is None:
        return
    keys, budget = topo.capacity_keys, topo.capacity_bytes
    sizes = value_sizes(scenario.keyspace, cell.seed)
    count = keys if keys is not None else _keys_in(budget or 0, sizes)
    ids = _node_keys(deployment, scenario, min(count, SAMPLE_KEYS))
    values = _values(sizes)
    largest = None if sizes.constant is not None else _largest(sizes, scenario.keyspace.keys)

    def one(i: int) -> Calibration:
        return calibrate(
            controls[i],
            [key_name(k) for k in ids[i]],
            values,
            capacity=keys,
            budget=budget,
            policy=policy,
            samples=samples_for(scenario),
            ttl=scenario.strategies[cell.strategy].ttl,
            by_count=keys is not None,
            largest=largest,
        )

    # nodes on distinct servers are measured side by side, each with its own client
    # (their settle polls and the servers' work overlap; each reads only its own
    # server's memory): a 3-node capacity in keys took 4.0 s one after another, 2.5 s so
    distinct = len(set(deployment.addresses)) == len(controls)
    workers = len(controls) if distinct else 1
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="calibrate") as pool:
        site.calibrations.extend(pool.map(one, range(len(controls))))
    for i, calibration in enumerate(site.calibrations):
        for address in deployment.replica_addresses(i):
            configure(address, deployment, policy, calibration.maxmemory, samples_for(scenario))
    budgets = [c.budget for c in site.calibrations]
    what = f"{keys} keys" if keys is not None else f"{budget} bytes"
    site.notes.append(
        f"capacity {what}/node -> data budget {budgets} bytes "
        f"(~{site.calibrations[0].bytes_per_key:.0f} B/key measured), {policy}; maxmemory = "
        "non-data memory (client buffers, ...) + budget, held during the run"
    )


EXACT_LARGEST = 100_000
"""Keyspaces up to this many keys have their largest value found key by key."""


def _largest(sizes: ValueSizes, keys: int) -> int:
    """The largest value size among `keys` keys (beyond `EXACT_LARGEST`: the size at the
    quantile the largest of that many draws lies at on average)."""
    if keys <= EXACT_LARGEST:
        return int(sizes.array(np.arange(keys)).max())
    return sizes.size_at(1.0 - 1.0 / (keys + 1))


def _keys_in(budget: int, sizes: ValueSizes) -> int:
    """About how many keys a byte budget holds (values alone: a sample large enough)."""
    return max(1, int(budget // max(sizes.mean, 1.0)))


def _values(sizes: ValueSizes) -> Callable[[str], bytes]:
    """A key name's stored value: version 1 padded to the key's own size."""
    if sizes.constant is not None:
        value = encode(Versioned(1, sizes.constant))
        return lambda _name: value
    return lambda name: encode(Versioned(1, sizes(int(name.removeprefix("key:")))))


def _node_keys(deployment: Deployment, scenario: Scenario, count: int) -> list[list[int]]:
    """The first `count` keys every node owns (the run's own names, routed as the cache
    routes them: a budget measured on them fits the run's keys byte for byte)."""
    n = len(deployment)
    owners = deployment.slot_owner
    route = (
        router(scenario.topology.sharding, n)
        if owners is None
        else (lambda name: owners[key_slot(name)])
    )
    ids: list[list[int]] = [[] for _ in range(n)]
    key = 0
    while min(len(node) for node in ids) < count:
        node = ids[route(key_name(key))]
        if len(node) < count:
            node.append(key)
        key += 1
    return ids


def configure(
    address: Address,
    deployment: Deployment,
    policy: str,
    maxmemory: int,
    samples: int = MAXMEMORY_SAMPLES,
) -> None:
    """The eviction settings of a primary on another server (a replica, for after a
    failover, or a restarted node: CONFIG SET does not survive a restart)."""
    client = redis.Redis(
        host=address[0], port=address[1], socket_timeout=5.0, **deployment.connection
    )
    try:
        configure_eviction(client, policy, samples)
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
