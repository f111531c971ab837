"""One server child process on 127.0.0.1 and its whole life: start, faults, stop.

`ChildServer` does what every server the lab starts needs, whatever it
serves: a free port (a new one if it was taken meanwhile), a private working
directory with its log, registration against orphans, SIGKILL (a crash),
SIGSTOP/SIGCONT (a pause), a restart on the same port, and a stop that never
leaves a process or a directory behind. A subclass says how to start its
program (`_argv`) and how to tell that it answers (`_answers`).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Final, Self, TypeVar

from lab.processes import registry
from lab.processes.errors import PortInUse, ServerError, ServerStartError
from lab.processes.ports import HOST, free_port
from lab.processes.procfs import proc_stat, wait_state
from lab.processes.signals import install_signal_handlers
from lab.processes.spawn import spawn
from lab.processes.workdir import OWNER_NAME, make_workdir, write_owner

__all__ = [
    "ChildServer",
    "ServerError",
    "ServerGroup",
    "ServerStartError",
    "start_many",
    "stop_many",
]

LOG_NAME: Final = "server.log"


class ChildServer:
    """A server child process the lab owns (not daemonized: we own the PID).

    Logs to ``<dir>/server.log``; files in a private temp dir removed by
    :meth:`stop`. Subclasses set `dir_prefix` and implement `_argv` and `_answers`.
    """

    dir_prefix: ClassVar[str] = "cachelab-server-"
    """Name prefix of the working directory (``cachelab-<kind>-``, swept if stale)."""
    port_in_use_markers: ClassVar[tuple[str, ...]] = ("Address already in use", "EADDRINUSE")
    """Log lines that mean the port was taken: start again on another one."""
    readiness: ClassVar[str] = "answer"
    """What a started server must do to be ready (for error messages: "did not ...")."""
    kept_on_restart: ClassVar[frozenset[str]] = frozenset({LOG_NAME, OWNER_NAME})
    """Files a cold restart keeps in the working directory (everything else goes)."""

    def __init__(
        self,
        *,
        program: str,
        port: int | None = None,
        startup_timeout: float = 10.0,
        die_with_parent: bool | None = None,
    ) -> None:
        self.program = program
        self.startup_timeout = startup_timeout
        self.die_with_parent = die_with_parent
        self._fixed_port = port is not None
        self._port = port if port is not None else free_port()
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self._paused = False
        self._started_once = False
        self._lock = threading.RLock()

    # -- what a subclass says ------------------------------------------------

    def _argv(self) -> list[str]:
        """The command line (the working directory `self._dir` exists)."""
        raise NotImplementedError

    def _answers(self, proc: subprocess.Popen[bytes]) -> bool:
        """Whether *this* process (not another one on the port) answers requests."""
        raise NotImplementedError

    def _new_ports(self) -> None:
        """Pick new ports after the chosen one was taken."""
        self._port = free_port()

    def _before_launch(self) -> None:
        """Last adjustments before each launch (e.g. ports a version needs)."""

    # -- introspection -----------------------------------------------------

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        return (HOST, self._port)

    @property
    def pid(self) -> int | None:
        """PID of the current (or most recent) process; None if never started."""
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        """The process exists (a paused process is alive)."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def paused(self) -> bool:
        return self._paused and self.alive

    @property
    def dir(self) -> Path | None:
        """Working directory; None once stopped."""
        return self._dir

    @property
    def log_path(self) -> Path | None:
        return self._dir / LOG_NAME if self._dir is not None else None

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of this server's log (for error messages)."""
        return self._read_log(lines, since_launch=False)

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Self:
        """Start the process and wait until it answers (and is really ours).

        Retries with a new port if the chosen one was taken meanwhile (or,
        for a fixed port, waits briefly for it to become free).  On any other
        failure the process is dead but the server stays registered, so
        :meth:`log_tail` still works; :meth:`stop` (or `stop_all`) cleans up.
        """
        with self._lock:
            if self.alive:
                return self
            deadline_fixed = time.monotonic() + 5.0
            last_error: ServerStartError | None = None
            for _attempt in range(8):
                self._launch()
                try:
                    self._await_ready(time.monotonic() + self.startup_timeout)
                    return self
                except PortInUse as exc:
                    last_error = exc
                    self._reap()
                    if self._fixed_port:
                        if time.monotonic() > deadline_fixed:
                            break
                        time.sleep(0.2)
                    else:
                        self._new_ports()
            raise ServerStartError(f"could not bind {HOST}:{self._port}: {last_error}")

    def stop(self, timeout: float = 5.0) -> None:
        """SIGCONT+SIGTERM, wait ``timeout``, then SIGKILL; remove the temp dir.

        Idempotent; also cleans up after :meth:`kill`.
        """
        with self._lock:
            self._send_term()
            self._finish_stop(timeout)

    def kill(self) -> None:
        """SIGKILL: a crash fault.  Data in memory is lost; the dir is kept."""
        with self._lock:
            proc = self._proc
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            self._paused = False

    def pause(self) -> None:
        """SIGSTOP: the server hangs (clients time out) but keeps its data."""
        with self._lock:
            proc = self._require_alive("pause")
            proc.send_signal(signal.SIGSTOP)
            self._paused = True
            wait_state(proc.pid, stopped=True)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        with self._lock:
            proc = self._require_alive("resume")
            proc.send_signal(signal.SIGCONT)
            self._paused = False
            wait_state(proc.pid, stopped=False)

    def restart(self, *, keep_data: bool = False) -> Self:
        """Kill (if running) and start again on the SAME port.

        By default every file but `kept_on_restart` is deleted so the server
        comes back cold; ``keep_data=True`` keeps everything (for persistence
        experiments).  After :meth:`stop` a new empty dir is used.
        """
        with self._lock:
            self.kill()
            if self._dir is not None and not keep_data:
                for entry in self._dir.iterdir():
                    if entry.name in self.kept_on_restart:
                        continue
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)
            was_fixed = self._fixed_port
            self._fixed_port = True
            try:
                return self.start()
            finally:
                self._fixed_port = was_fixed

    def __enter__(self) -> Self:
        if not self._started_once:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals -----------------------------------------------------------

    def _launch(self) -> None:
        """Spawn the child (no waiting) and register it immediately."""
        if self._dir is None:
            self._dir = make_workdir(f"{self.dir_prefix}{self._port}-")
        self._before_launch()
        log_path = self._dir / LOG_NAME
        argv, cwd = self._argv(), str(self._dir)
        with open(log_path, "ab") as log:
            self._log_offset = log.tell()
            install_signal_handlers()
            self._proc = registry.launch(
                self, lambda: spawn(argv, log=log, cwd=cwd, die_with_parent=self.die_with_parent)
            )
        write_owner(self._dir, self._proc.pid)
        self._paused = False
        self._started_once = True

    def _await_ready(self, deadline: float) -> None:
        """Poll until our process answers (see `_answers`)."""
        proc = self._proc
        assert proc is not None
        while True:
            code = proc.poll()
            if code is not None:
                tail = self._read_log(25, since_launch=True)
                if any(marker in tail for marker in self.port_in_use_markers):
                    raise PortInUse(f"port {self._port} already in use")
                raise ServerStartError(
                    f"{self.program} exited with code {code} during startup "
                    f"on port {self._port}; last log lines:\n{tail}"
                )
            if self._answers(proc):
                return
            if time.monotonic() > deadline:
                tail = self._read_log(25, since_launch=True)
                self._reap(force=True)
                raise ServerStartError(
                    f"{self.program} on port {self._port} did not {self.readiness} within "
                    f"{self.startup_timeout:.0f}s; last log lines:\n{tail}"
                )
            time.sleep(0.02)

    def _reap(self, force: bool = False) -> None:
        proc = self._proc
        if proc is None:
            return
        if force and proc.poll() is None:
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)

    def _send_term(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # a paused server cannot handle SIGTERM
            proc.send_signal(signal.SIGTERM)

    def _finish_stop(self, timeout: float) -> None:
        proc = self._proc
        if proc is not None and not _wait_resuming(proc, timeout):
            proc.kill()  # SIGKILL ends a stopped process too
            proc.wait(timeout=10)
        self._paused = False
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        registry.unregister(self)

    def _require_alive(self, action: str) -> subprocess.Popen[bytes]:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            raise ServerError(f"cannot {action} {self!r}: not running")
        return proc

    def _read_log(self, lines: int, *, since_launch: bool) -> str:
        if self._dir is None:
            return "(log removed)"
        try:
            with open(self._dir / LOG_NAME, "rb") as fh:
                if since_launch:
                    fh.seek(self._log_offset)
                data = fh.read()
        except OSError as exc:
            return f"(cannot read log: {exc})"
        text = data.decode("utf-8", errors="replace").rstrip()
        return "\n".join(text.splitlines()[-lines:])


def _wait_resuming(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait up to ``timeout`` for ``proc`` to exit after SIGTERM; True if it did.

    A process stopped by SIGSTOP keeps SIGTERM pending and never exits.  The
    stop sends SIGCONT first, but `stop_all` (atexit, signal handlers)
    takes no per-server lock, so a pause fault in another thread can land just
    after that SIGCONT: whenever the kernel reports the process stopped, it is
    resumed again instead of waiting out the timeout and SIGKILLing it.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            proc.wait(timeout=max(0.0, min(0.05, deadline - time.monotonic())))
            return True
        except subprocess.TimeoutExpired:
            pass
        if time.monotonic() >= deadline:
            return False
        fields = proc_stat(proc.pid)
        if fields and fields[0] == "T" and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)


S = TypeVar("S", bound=ChildServer)


def start_many(servers: Sequence[ChildServer]) -> None:
    """Spawn all, then wait for each: N servers start in ~1x the time of one."""
    try:
        for server in servers:
            server._launch()
        for server in servers:
            try:
                server._await_ready(time.monotonic() + server.startup_timeout)
            except PortInUse:
                server._reap()
                server._new_ports()
                server.start()
    except BaseException:
        stop_many(servers, quiet=True)
        raise


def stop_many(servers: Iterable[ChildServer], *, timeout: float = 5.0, quiet: bool = False) -> None:
    """Signal every server first, then wait: N servers stop in ~1x, not Nx."""
    registry.stop_many(servers, timeout=timeout, quiet=quiet)


class ServerGroup(list[S]):
    """A list of independent servers that stop together (context manager)."""

    @property
    def ports(self) -> list[int]:
        return [server.port for server in self]

    def start(self) -> Self:
        """Start every server not yet started."""
        start_many([server for server in self if not server.alive])
        return self

    def stop(self, timeout: float = 5.0) -> None:
        stop_many(self, timeout=timeout)

    def __enter__(self) -> Self:
        if not any(server.alive for server in self):
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
