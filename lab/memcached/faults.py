"""Faults on the lab's memcached servers: one handler per kind it can inject.

`node_crash` (SIGKILL, cold restart on the same port) and `node_pause`
(SIGSTOP/SIGCONT) are the process faults every backend with its own servers
shares (`lab.aio.faults`); `origin_slow` and `origin_down` act on the origin
(`lab.origins.faults`). Not here, so refused with the reason: `failover`
(memcached has no replication), `bus_loss` and `bus_delay` (no pub/sub),
`latency` and `partition` (no fault proxy in front of memcached yet).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lab.aio import faults as process
from lab.aio.faults import Action, ScheduledFaults
from lab.backend import FaultHandlers
from lab.memcached.server import MemcachedServer
from lab.origins import RealOrigin
from lab.origins import faults as origin
from lab.scenario import NodeCrash, NodePause, OriginDown, OriginSlow


class Nodes:
    """Node i's server process."""

    def __init__(self, servers: Sequence[MemcachedServer]) -> None:
        self._servers = list(servers)

    def server(self, index: int) -> MemcachedServer:
        return self._servers[index]


@dataclass
class MemcachedFaults(ScheduledFaults):
    nodes: Nodes
    origin: RealOrigin

    @property
    def servers(self) -> Nodes:
        return self.nodes

    def restarted(self, index: int) -> None:
        """Its settings are its command line: nothing to re-apply."""


FAULTS: FaultHandlers[MemcachedFaults, Action] = FaultHandlers("memcached")
FAULTS.handles(NodeCrash)(process.crash)
FAULTS.handles(NodePause)(process.pause)
FAULTS.handles(OriginSlow)(origin.origin_slow)
FAULTS.handles(OriginDown)(origin.origin_down)
