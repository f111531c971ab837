"""Network faults on real servers, through the fault proxy: for any backend whose servers
speak TCP. A backend registers these handlers in its `FaultHandlers` and puts the
proxy where `placement` says."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from lab.aio.faults import Action
from lab.netfault.proxy import FaultProxy
from lab.scenario import BusDelay, Fault, Latency, Partition

Address = tuple[str, int]


@dataclass
class Placement:
    """Where the proxy stands: in front of the nodes that network faults name, and (for
    bus_delay) in front of the bus subscriber, the last of the targets."""

    targets: list[Address] = field(default_factory=list)
    proxied: dict[int, int] = field(default_factory=dict)
    """Node -> its index in the proxy."""
    bus_via: int | None = None
    """Index in the proxy of the bus subscriber's connection."""


def placement(faults: Sequence[Fault], nodes: Sequence[Address], bus: Address | None) -> Placement:
    """The proxy targets the scenario's network faults need (none: no proxy at all)."""
    network = [f for f in faults if f.network]
    proxied = sorted({f.node_index for f in network if f.node_index is not None})
    place = Placement([nodes[node] for node in proxied], {n: i for i, n in enumerate(proxied)})
    if bus is not None and any(f.target == "bus" for f in network):
        place.bus_via = len(place.targets)
        place.targets.append(bus)
    return place


class ProxiedFaults(Protocol):
    """What the network fault handlers act on."""

    @property
    def proxy(self) -> FaultProxy | None: ...

    @property
    def placement(self) -> Placement: ...

    @property
    def seed(self) -> int: ...

    def inline(self, what: str, fn: Callable[[], None]) -> Action: ...


def _via(ctx: ProxiedFaults, node: int) -> tuple[FaultProxy, int]:
    assert ctx.proxy is not None, "network faults need the fault proxy"
    return ctx.proxy, ctx.placement.proxied[node]


def latency(ctx: ProxiedFaults, fault: Latency, index: int) -> tuple[Action, Action]:
    """Each chunk to the node waits for a sample of `add` (the simulator's stream)."""
    node, (proxy, at) = fault.node, _via(ctx, fault.node)
    add, stream, seed = fault.add, f"fault.{index}", ctx.seed
    return (
        ctx.inline(
            f"latency to node {node}",
            lambda: proxy.add_latency(at, add, seed=seed, stream=stream),
        ),
        ctx.inline(f"node {node} healed", lambda: proxy.heal(at)),
    )


def partition(ctx: ProxiedFaults, fault: Partition, index: int) -> tuple[Action, Action]:
    """`refuse` resets and refuses connections, `hang` forwards nothing, until the heal."""
    node, mode, (proxy, at) = fault.node, fault.mode, _via(ctx, fault.node)
    return (
        ctx.inline(f"partition node {node} ({mode})", lambda: proxy.partition(at, mode)),
        ctx.inline(f"node {node} healed", lambda: proxy.heal(at)),
    )


def bus_delay(ctx: ProxiedFaults, fault: BusDelay, index: int) -> tuple[Action, Action]:
    """What the server sends the bus subscriber waits for a sample of `add`."""
    proxy, at = ctx.proxy, ctx.placement.bus_via
    assert proxy is not None and at is not None, "bus_delay needs the fault proxy"
    add, stream, seed = fault.add, f"fault.{index}", ctx.seed
    return (
        ctx.inline(
            "bus delays messages",
            lambda: proxy.add_latency(at, add, seed=seed, stream=stream, direction="down"),
        ),
        ctx.inline("bus recovers", lambda: proxy.heal(at)),
    )
