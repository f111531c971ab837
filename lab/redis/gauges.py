"""What the servers say about themselves during a run: evictions, keys, memory, clients."""

from __future__ import annotations

from collections.abc import Callable

import redis

from lab.redis.deployment import Deployment


class ServerGauges:
    """Evictions (INFO stats evicted_keys) and cache size (DBSIZE), summed over nodes.

    Called synchronously by the client loop's ticker once per interval: a
    millisecond of blocking per second, for exact sampling times. A node that
    is down or paused is not asked (it would block the loop) and keeps its last
    value; a restarted node's eviction counter starts again from 0, so it is
    carried over. After a failover node i is asked at its new address.
    """

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        n = len(deployment)
        self._controls: list[tuple[tuple[str, int], redis.Redis] | None] = [None] * n
        self.evicted = [0] * n
        self._seen = [0] * n
        self.keys = [0] * n
        self.memory = [0] * n
        self.connections = [0] * n
        self.on_poll: Callable[[], None] | None = None
        self.clock: Callable[[], float] | None = None
        self.history: list[tuple[float, list[int]]] | None = None
        """With a list here (and a `clock`), every poll appends (time, keys per node): how
        well each node held its capacity, interval by interval (`lab.fidelity.hold`)."""

    def control(self, index: int) -> redis.Redis:
        address = self.deployment.addresses[index]
        held = self._controls[index]
        if held is None or held[0] != address:
            if held is not None:
                held[1].close()
                self._seen[index] = 0  # another server: its own counter
            held = (address, self.deployment.control(index))
            self._controls[index] = held
        return held[1]

    def poll(self) -> None:
        for i in range(len(self.deployment)):
            if not self.deployment.reachable(i):
                continue
            try:
                control = self.control(i)
                info = control.info()  # one round trip: stats, memory, clients
                counter = int(info["evicted_keys"])
                self.memory[i] = int(info["used_memory"])
                self.connections[i] = int(info["connected_clients"])
                self.keys[i] = int(control.dbsize())
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                continue
            self.evicted[i] += counter - self._seen[i] if counter >= self._seen[i] else counter
            self._seen[i] = counter
        if self.history is not None and self.clock is not None:
            self.history.append((self.clock(), list(self.keys)))

    @property
    def evictions(self) -> int:
        return sum(self.evicted)

    def close(self) -> None:
        for held in self._controls:
            if held is not None:
                held[1].close()

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
