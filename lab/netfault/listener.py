"""One listening port of the proxy: its target, its faults, its connections."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any, Final

from lab.netfault.connection import Connection, PartitionMode, nodelay
from lab.processes.ports import HOST

_BACKLOG: Final = 1024
_ACCEPTS_PER_WAKEUP: Final = 64


class Listener:
    """One listening port, its target and its current faults."""

    def __init__(self, loop: asyncio.AbstractEventLoop, target: tuple[str, int]) -> None:
        self.loop = loop
        self.target = target
        self.sock: socket.socket | None = None
        self.port = 0
        self.listening = False
        self.mode: PartitionMode | None = None
        self.extra: Callable[[], float] | None = None  # client -> server
        self.down_extra: Callable[[], float] | None = None  # server -> client
        self.conns: set[Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    def bind(self) -> int:
        """Bind a free port *explicitly*, so it stays reserved while not listening.

        (Linux releases a port bound as port 0 when its socket stops listening.)
        """
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((HOST, 0))
            self.port = int(probe.getsockname()[1])
            self.sock = self._bound_socket()
        self._listen()
        return self.port

    def _bound_socket(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((HOST, self.port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    def _listen(self) -> None:
        if self.sock is None:  # fallback path of _unlisten: bind the same port again
            self.sock = self._bound_socket()
        self.sock.listen(_BACKLOG)
        self.loop.add_reader(self.sock.fileno(), self._accept)
        self.listening = True

    def _unlisten(self) -> None:
        """Refuse new connects: stop listening, keep the port bound (Linux)."""
        if self.sock is None or not self.listening:
            return
        self.loop.remove_reader(self.sock.fileno())
        self.listening = False
        try:
            self.sock.shutdown(socket.SHUT_RD)  # Linux: back to CLOSE, still bound
        except OSError:  # elsewhere: close, re-bind with SO_REUSEADDR at heal
            self.sock.close()
            self.sock = None

    def _accept(self) -> None:
        sock = self.sock
        if sock is None:
            return
        for _ in range(_ACCEPTS_PER_WAKEUP):
            try:
                client, _addr = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. ECONNABORTED, EMFILE: try again on the next wake-up
                return
            client.setblocking(False)
            nodelay(client)
            conn = Connection(self)
            self.conns.add(conn)
            task = self.loop.create_task(conn.open(client))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    # -- faults ----------------------------------------------------------------

    def partition(self, mode: PartitionMode) -> None:
        if mode == self.mode:
            return
        if self.mode == "refuse":
            self._listen()
        self.mode = mode
        if mode == "refuse":
            self._unlisten()
            for conn in list(self.conns):
                conn.reset()
        else:
            for conn in list(self.conns):
                conn.hang()

    def heal(self) -> None:
        self.extra = self.down_extra = None
        if self.mode == "refuse":
            self._listen()
        elif self.mode == "hang":
            for conn in [c for c in self.conns if c.hung]:
                conn.reset()
        self.mode = None

    def retarget(self, host: str, port: int) -> None:
        self.target = (host, port)
        for conn in list(self.conns):
            conn.reset()

    def close(self) -> None:
        if self.sock is not None:
            if self.listening:
                self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
        self.listening = False
        for conn in list(self.conns):
            conn.reset()
        for task in list(self.tasks):
            task.cancel()

    def status(self) -> dict[str, Any]:
        return {
            "port": self.port,
            "target": list(self.target),
            "partition": self.mode,
            "latency": self.extra is not None,
            "latency_down": self.down_extra is not None,
            "connections": len(self.conns),
            "held_down": sum(conn.down_queued for conn in self.conns),
        }
