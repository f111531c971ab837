"""Every server process this lab process started, so none is ever orphaned.

`stop_all` runs at interpreter exit and from the SIGTERM/SIGINT handlers
(`lab.processes.signals`); `leaked_processes` lets the test suite prove that
nothing survived. A forked child does not own its parent's servers.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import threading
from collections.abc import Callable, Iterable
from typing import Protocol

from lab.processes.procfs import process_alive, start_time


class Stoppable(Protocol):
    """A registered server: stopping signals all first, then waits for each."""

    def _send_term(self) -> None: ...

    def _finish_stop(self, timeout: float) -> None: ...


_registry_lock = threading.RLock()
_live: dict[Stoppable, None] = {}  # insertion-ordered set
_spawned: list[tuple[int, str | None]] = []  # (pid, start_time) of every child ever
_owner_pid = os.getpid()


def launch(
    server: Stoppable, start: Callable[[], subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    """Start a child with ``start()`` and record it, with no `stop_all` in between."""
    with _registry_lock:
        proc = start()
        _live[server] = None
        _spawned.append((proc.pid, start_time(proc.pid)))
    return proc


def unregister(server: Stoppable) -> None:
    with _registry_lock:
        _live.pop(server, None)


def live_servers() -> list[Stoppable]:
    """Servers started by this process and not yet stopped."""
    with _registry_lock:
        return list(_live)


def leaked_processes() -> list[int]:
    """PIDs of server processes this process spawned that still run.

    After `stop_all` this must be empty; the test suite checks it.
    """
    with _registry_lock:
        spawned = list(_spawned)
    return [pid for pid, started in spawned if process_alive(pid, started)]


def stop_all(timeout: float = 5.0) -> int:
    """Stop every registered server (atexit / signal handlers call this).

    Returns how many servers were still registered.  Never raises, so it is
    safe in exit paths; a no-op in a forked child (the parent owns them).
    """
    if os.getpid() != _owner_pid:
        return 0
    servers = live_servers()
    stop_many(servers, timeout=timeout, quiet=True)
    return len(servers)


def stop_many(servers: Iterable[Stoppable], *, timeout: float = 5.0, quiet: bool = False) -> None:
    """Signal every server first, then wait: N servers stop in ~1x, not Nx."""
    ordered = list(servers)
    for server in ordered:
        try:
            server._send_term()
        except Exception:
            if not quiet:
                raise
    errors: list[BaseException] = []
    for server in ordered:
        try:
            server._finish_stop(timeout)
        except Exception as exc:
            errors.append(exc)
    if errors and not quiet:
        raise errors[0]


def _after_fork_in_child() -> None:
    """A forked child does not own the parent's servers: forget them.

    The lock is replaced, not acquired: another thread may have held it at fork.
    """
    global _owner_pid, _registry_lock
    _registry_lock = threading.RLock()
    _live.clear()
    _spawned.clear()
    _owner_pid = os.getpid()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(stop_all)
