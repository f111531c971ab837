"""Real ``memcached`` processes for the lab, on `lab.processes.ChildServer`.

The generic life of a child server (free loopback port, private directory,
never orphaned: PR_SET_PDEATHSIG, the registry's stop at exit and on
signals, stale directories swept) is `lab.processes`; this module adds what
is memcached about it: its options (`-m` memory, `-t` threads, `-f` growth
factor, `-n` minimum chunk, slab_automove) and ``stats`` pid as readiness.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from dataclasses import dataclass
from typing import ClassVar

from lab.memcached.binaries import find_memcached
from lab.memcached.control import stats
from lab.processes.binaries import Binary
from lab.processes.ports import HOST
from lab.processes.server import ChildServer, ServerGroup, start_many


@dataclass(frozen=True)
class Options:
    """A memcached's command-line settings (memcached's defaults but slab_automove)."""

    memory_mib: int = 64
    threads: int = 4
    growth_factor: float = 1.25
    min_chunk: int = 48
    slab_automove: bool = False
    """Off here (memcached's default is on): pages stay with the class that got them
    first (calcification), which the simulator models exactly."""
    max_connections: int = 1024

    def argv(self) -> list[str]:
        return [
            "-m", str(self.memory_mib),
            "-t", str(self.threads),
            "-f", repr(self.growth_factor),
            "-n", str(self.min_chunk),
            "-c", str(self.max_connections),
            "-o", f"slab_automove={int(self.slab_automove)}",
        ]  # fmt: skip


class MemcachedServer(ChildServer):
    """One ``memcached`` child on 127.0.0.1 (TCP only, UDP off)."""

    dir_prefix: ClassVar[str] = "cachelab-memcached-"
    readiness: ClassVar[str] = "answer stats"
    port_in_use_markers: ClassVar[tuple[str, ...]] = (
        "Address already in use",
        "failed to listen",
    )

    def __init__(
        self,
        options: Options | None = None,
        *,
        port: int | None = None,
        binary: Binary | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        self.options = options or Options()
        self.binary = binary or find_memcached()
        super().__init__(program=self.binary.path, port=port, startup_timeout=startup_timeout)

    def __repr__(self) -> str:
        state = "paused" if self.paused else "alive" if self.alive else "stopped"
        return f"<MemcachedServer {self.binary.label} {HOST}:{self._port} pid={self.pid} {state}>"

    def _argv(self) -> list[str]:
        argv = [self.binary.path, "-p", str(self._port), "-l", HOST, "-U", "0"]
        if os.geteuid() == 0:  # memcached refuses to run as root without -u
            argv += ["-u", "root"]
        return argv + self.options.argv()

    def _answers(self, proc: subprocess.Popen[bytes]) -> bool:
        """``stats`` answered by our process (its pid): another server on the port
        means ours failed to bind."""
        try:
            return int(stats(self.address, timeout=0.5).get("pid", -1)) == proc.pid
        except (OSError, ValueError):
            return False

    def stats(self, group: str = "") -> dict[str, str]:
        return stats(self.address, group)

    def _send_term(self) -> None:
        """SIGTERM, then a connection to wake memcached's idle event loop: it reads the
        signal's flag only on an event or its once-a-second clock tick, so an idle server
        took ~1 s to exit (measured: 1.0 s idle, 2-15 ms once woken)."""
        super()._send_term()
        if self.alive:
            with contextlib.suppress(OSError):
                socket.create_connection(self.address, timeout=0.1).close()


def start_memcached(
    options: Options | None = None, *, binary: Binary | None = None
) -> MemcachedServer:
    """One memcached, started."""
    return MemcachedServer(options, binary=binary).start()


def start_nodes(
    n: int, options: Options | None = None, *, binary: Binary | None = None
) -> ServerGroup[MemcachedServer]:
    """`n` independent memcached servers (the client hashes keys over them)."""
    binary = binary or find_memcached()
    group = ServerGroup(MemcachedServer(options, binary=binary) for _ in range(n))
    start_many(group)
    return group
