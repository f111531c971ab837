"""Free TCP ports on loopback, never the machine's own well-known ones."""

from __future__ import annotations

import os
import socket
import threading
from collections import deque
from typing import Final

from lab.processes.errors import ServerStartError

HOST: Final = "127.0.0.1"
"""Every server binds loopback only: the lab never exposes anything."""

NEVER_USE_PORTS: Final = frozenset({6379, 11211})
"""The machine's own Redis and memcached."""


_port_lock = threading.Lock()
_recent_ports: deque[int] = deque(maxlen=512)


def free_port(host: str = HOST) -> int:
    """A currently free TCP port on ``host`` (bind to port 0, then close).

    Racy by nature - someone may grab it before the server binds - so a
    server's start retries with a new port on "Address already in use".
    Ports handed out recently by this process are skipped so servers
    started together never collide with each other.
    """
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        with _port_lock:
            if port in NEVER_USE_PORTS or port in _recent_ports:
                continue
            _recent_ports.append(port)
        return port
    raise ServerStartError("could not find a free TCP port")


def _after_fork_in_child() -> None:
    """Another thread may have held the lock at fork: replace it, never acquire it."""
    global _port_lock
    _port_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
