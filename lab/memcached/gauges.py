"""What the memcached servers say during a run: evictions, items, bytes, connections."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lab.memcached.control import Control
from lab.memcached.server import MemcachedServer


class MemcachedGauges:
    """``stats`` of every node once per interval (one round trip each, blocking about a
    millisecond). A paused or dead node keeps its last values; a restarted node's
    eviction counter starts again from 0, so it is carried over."""

    def __init__(self, servers: Sequence[MemcachedServer]) -> None:
        self.servers = list(servers)
        n = len(self.servers)
        self._controls: list[Control | None] = [None] * n
        self.evicted = [0] * n
        self._seen = [0] * n
        self.keys = [0] * n
        self.memory = [0] * n
        self.connections = [0] * n
        self.on_poll: Callable[[], None] | None = None

    def _stats(self, i: int) -> dict[str, str] | None:
        server = self.servers[i]
        if not server.alive or server.paused:
            return None
        try:
            control = self._controls[i]
            if control is None:
                control = self._controls[i] = Control(server.address, timeout=1.0)
            return control.stats()
        except (OSError, ValueError):
            self._drop(i)
            return None

    def _drop(self, i: int) -> None:
        control = self._controls[i]
        if control is not None:
            control.close()
        self._controls[i] = None
        self._seen[i] = 0  # a restarted server counts from 0

    def poll(self) -> None:
        for i in range(len(self.servers)):
            stats = self._stats(i)
            if stats is None:
                continue
            counter = int(stats["evictions"])
            self.evicted[i] += counter - self._seen[i] if counter >= self._seen[i] else counter
            self._seen[i] = counter
            self.keys[i] = int(stats["curr_items"])
            self.memory[i] = int(stats["bytes"])
            self.connections[i] = int(stats["curr_connections"])

    def malloced(self) -> int:
        """Slab pages taken, in bytes, over the nodes that answer (``stats slabs``)."""
        total = 0
        for server in self.servers:
            if server.alive and not server.paused:
                try:
                    total += int(server.stats("slabs").get("total_malloced", 0))
                except (OSError, ValueError):
                    continue
        return total

    @property
    def evictions(self) -> int:
        return sum(self.evicted)

    def close(self) -> None:
        for i in range(len(self.servers)):
            self._drop(i)

    def __call__(self) -> dict[str, float]:
        self.poll()
        if self.on_poll is not None:
            self.on_poll()
        return {
            "evictions": self.evictions,
            "cache_keys": sum(self.keys),
            "cache_memory": sum(self.memory),
            "connections": sum(self.connections),
        }
