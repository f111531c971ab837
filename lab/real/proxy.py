"""A real TCP fault proxy between the lab's clients and its Redis servers.

Why: `latency` and `partition` faults used to be emulated inside the cache
client. A proxy makes them real network behaviour: the bytes really wait,
sockets really get reset or refused, and a client really times out, whatever
client library or pattern sits on top.

One :class:`FaultProxy` fronts several targets, one listening port on
127.0.0.1 per target node, and forwards each accepted connection to its
node. Faults, per node:

* latency: data flowing client -> server is delayed by a freshly sampled
  delay per chunk read (the simulator adds one sample of `extra` per request
  round trip; one chunk is normally one request, a pipeline's chunk gets one
  sample), preserving byte order: a chunk is released at
  ``max(arrival + sample, previous release on that connection)``.
  Server -> client data is forwarded at once, unless a latency was set with
  ``direction="down"`` (the same mechanism the other way: `bus_delay` holds
  back pub/sub messages on their way to a subscriber). The sampler is rebuilt in the
  proxy from the scenario's `Distribution` and (seed, stream) via
  :mod:`lab.sampling`, so a fault draws the same numbers as in the simulator.
  Delays are never shorter than the sample, but timer based: an idle proxy
  fires up to ~1 ms late (epoll's millisecond timeouts; measured median
  +0.4-0.8 ms), a busy one on its next wake-up.
* partition "refuse": existing connections are reset (RST, SO_LINGER 0:
  ECONNRESET) and new connects are refused (ECONNREFUSED): the listening
  socket stops listening but stays bound, so nobody takes the port, and
  listens again on the same port at heal.
* partition "hang": existing and new connections stay open but nothing is
  forwarded either way (clients time out). At heal the connections that were
  open during the hang are reset (their state is unknown; clients already
  gave up on them) and new ones forward normally.
* ``heal`` clears latency and partition of that node; ``retarget`` points a
  node at another address (e.g. a server restarted on a new port) and resets
  its connections.

A target that refuses (a crashed node) makes the proxy reset the accepted
connection: the client sees ECONNRESET right after connecting instead of
ECONNREFUSED, which every client treats as "node unreachable" too.

Isolation: the proxy runs in a child process with its own asyncio loop, not
on the caller's loop and not in a thread of the caller. Measured on the
lab's 2-core machine, 50 concurrent redis-py asyncio GETs (or PINGs) for 2 s:
through the proxy process 0.8-0.9x the direct throughput, through the same
proxy in a thread of the load generator only 0.4-0.5x (and twice the p50
latency): the thread competes with the load generator for the GIL, so its
forwarding work lands in the generator's latency figures, while the process
uses the other core. A sequential PING pays ~30-60 us for the extra hop. The
child costs ~0.2 s to start (Python, numpy for the samplers) and ~50 us per
control call (a JSON line over a pipe). It never outlives the lab: it exits
on EOF of its control pipe (the parent closed it or died, whatever thread
started it), gets ``PR_SET_PDEATHSIG=SIGKILL`` on Linux when started from the
main thread (as :mod:`lab.real.servers` does), and :meth:`FaultProxy.close`
runs at interpreter exit for every proxy still open. Ctrl-C is left to the
parent: the child ignores SIGINT.

Fast path: asyncio Protocols on transports (no stream objects), TCP_NODELAY
on both sides, a chunk is written straight through when its node has no
fault and its connection nothing queued.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import gc
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Self

from lab.real.servers import HOST, _pdeathsig_preexec
from lab.sampling import rng_for, sampler
from lab.scenario import Distribution

__all__ = ["FaultProxy", "PartitionMode", "ProxyError"]

PartitionMode = Literal["hang", "refuse"]

_BACKLOG: Final = 1024
_ACCEPTS_PER_WAKEUP: Final = 64
_CONNECT_TIMEOUT: Final = 5.0
"""Seconds to reach a target; loopback connects take microseconds or fail at once."""
_MAX_QUEUED: Final = 4 * 1024 * 1024
"""Bytes held per connection (delayed or not yet connected) before reading from the
client pauses: back-pressure instead of unbounded memory."""
_CALL_TIMEOUT: Final = 5.0
_LINGER_RESET: Final = struct.pack("ii", 1, 0)
_CLOCK_SLACK: Final = time.get_clock_info("monotonic").resolution


class ProxyError(RuntimeError):
    """The proxy process failed to start, died, or rejected a command."""


# --------------------------------------------------------------------------
# the proxy itself (runs on the child's event loop)


def _nodelay(sock: Any) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _reset(transport: asyncio.Transport | None) -> None:
    """Close with RST (SO_LINGER 0), so the peer sees ECONNRESET, not an orderly EOF."""
    if transport is None or transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    transport.abort()


class _Conn:
    """One client connection and its upstream connection to the node."""

    __slots__ = (
        "client",
        "client_eof",
        "client_full",
        "closed",
        "down_last",
        "down_queue",
        "down_queued",
        "down_timer",
        "hung",
        "last_release",
        "loop",
        "node",
        "pending",
        "queue",
        "queued",
        "timer",
        "up_full",
        "upstream",
    )

    def __init__(self, node: _Node) -> None:
        self.node = node
        self.loop = node.loop
        self.client: asyncio.Transport | None = None
        self.upstream: asyncio.Transport | None = None
        self.pending: list[bytes] = []  # released before the upstream connection was up
        self.queue: deque[tuple[float, bytes]] = deque()  # (release time, chunk)
        self.queued = 0  # bytes in pending + queue
        self.timer: asyncio.TimerHandle | None = None
        self.last_release = 0.0
        # server -> client, delayed only under a downstream latency fault
        self.down_queue: deque[tuple[float, bytes]] = deque()
        self.down_queued = 0
        self.down_timer: asyncio.TimerHandle | None = None
        self.down_last = 0.0
        self.hung = node.mode == "hang"
        self.closed = False
        self.client_eof = False
        self.up_full = False  # upstream's write buffer is full: stop reading the client
        self.client_full = False  # and vice versa

    async def open(self, sock: socket.socket) -> None:
        """Wrap the accepted socket, then connect to the node (unless hung)."""
        loop = self.loop
        try:
            await loop.connect_accepted_socket(lambda: _ClientSide(self), sock)
        except OSError:
            sock.close()
            self._discard()
            return
        if self.hung or self.closed:
            return
        host, port = self.node.target
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: _UpstreamSide(self), host, port), _CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError):
            self.reset()

    # -- client -> server ----------------------------------------------------

    def from_client(self, data: bytes) -> None:
        extra = self.node.extra
        if extra is None and not self.queue:
            self._send_up(data)
            return
        release = self.last_release = self._release_time(extra, self.last_release)
        self.queue.append((release, data))
        self.queued += len(data)
        if self.timer is None:
            self.timer = self.loop.call_at(release, self._release)
        if self.queued > _MAX_QUEUED:
            self.update_reading()

    def _release_time(self, extra: Callable[[], float] | None, previous: float) -> float:
        """Now plus a sample of the delay, never before the chunk queued ahead of it."""
        release = self.loop.time()
        if extra is not None:
            release += extra()
        return release if release > previous else previous

    def _release(self) -> None:
        """Forward every queued chunk whose time has come, in order."""
        self.timer = None
        if self.closed or self.hung:
            return
        now = self.loop.time() + _CLOCK_SLACK
        queue = self.queue
        while queue and queue[0][0] <= now:
            data = queue.popleft()[1]
            self.queued -= len(data)
            self._send_up(data)
        if queue:
            self.timer = self.loop.call_at(queue[0][0], self._release)
        elif self.client_eof:
            self._finish_upstream()
            return
        self.update_reading()

    def _send_up(self, data: bytes) -> None:
        if self.upstream is not None:
            self.upstream.write(data)
        else:
            self.pending.append(data)
            self.queued += len(data)
            if self.queued > _MAX_QUEUED:
                self.update_reading()

    def upstream_made(self, transport: asyncio.Transport) -> None:
        if self.closed:
            _reset(transport)
            return
        self.upstream = transport
        _nodelay(transport.get_extra_info("socket"))
        if self.hung:
            transport.pause_reading()
            return
        if self.pending:
            for data in self.pending:
                self.queued -= len(data)
            transport.writelines(self.pending)
            self.pending = []
            self.update_reading()
        if self.client_eof and not self.queue:
            self._finish_upstream()

    # -- server -> client ----------------------------------------------------

    def from_upstream(self, data: bytes) -> None:
        if self.client is None or self.hung:
            return
        extra = self.node.down_extra
        if extra is None and not self.down_queue:
            self.client.write(data)
            return
        release = self.down_last = self._release_time(extra, self.down_last)
        self.down_queue.append((release, data))
        self.down_queued += len(data)
        if self.down_timer is None:
            self.down_timer = self.loop.call_at(release, self._release_down)
        if self.down_queued > _MAX_QUEUED:
            self.update_reading()

    def _release_down(self) -> None:
        """Forward every queued server chunk whose time has come, in order."""
        self.down_timer = None
        if self.closed or self.hung or self.client is None:
            return
        now = self.loop.time() + _CLOCK_SLACK
        queue = self.down_queue
        while queue and queue[0][0] <= now:
            data = queue.popleft()[1]
            self.down_queued -= len(data)
            self.client.write(data)
        if queue:
            self.down_timer = self.loop.call_at(queue[0][0], self._release_down)
        self.update_reading()

    # -- flow control, faults, teardown ----------------------------------------

    def update_reading(self) -> None:
        """Read from a side only if not hung and the other side can take the data."""
        client, upstream = self.client, self.upstream
        if client is not None and not client.is_closing():
            if self.hung or self.up_full or self.queued > _MAX_QUEUED:
                client.pause_reading()
            else:
                client.resume_reading()
        if upstream is not None and not upstream.is_closing():
            if self.hung or self.client_full or self.down_queued > _MAX_QUEUED:
                upstream.pause_reading()
            else:
                upstream.resume_reading()

    def hang(self) -> None:
        """Stop forwarding both ways; whatever was in flight is dropped."""
        self.hung = True
        self._cancel()
        self.update_reading()

    def reset(self) -> None:
        """RST both sides (partition refuse, retarget, an unreachable node)."""
        self.closed = True
        self._cancel()
        _reset(self.client)
        _reset(self.upstream)
        self._discard()

    def client_lost(self, exc: Exception | None) -> None:
        self.client = None
        if self.closed:
            return
        if exc is None and not self.hung and (self.queue or self.upstream is None):
            self.client_eof = True  # forward what the client sent before closing
            return
        self.closed = True
        self._cancel()
        if exc is None:
            self._finish_upstream()
        else:
            _reset(self.upstream)
        self._discard()

    def upstream_lost(self, exc: Exception | None) -> None:
        self.upstream = None
        if self.closed:
            return
        self.closed = True
        self._cancel()
        if exc is None and self.client is not None:
            self.client.close()  # orderly: flush what the server sent, then FIN
        else:
            _reset(self.client)
        self._discard()

    def _finish_upstream(self) -> None:
        self.closed = True
        if self.upstream is not None:
            self.upstream.close()
        self._discard()

    def _cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.down_timer is not None:
            self.down_timer.cancel()
            self.down_timer = None
        self.down_queue.clear()
        self.down_queued = 0
        self.queue.clear()
        self.pending = []
        self.queued = 0

    def _discard(self) -> None:
        if self.closed or self.client is None:
            self.node.conns.discard(self)


class _ClientSide(asyncio.Protocol):
    """The accepted connection from a client."""

    __slots__ = ("conn",)

    def __init__(self, conn: _Conn) -> None:
        self.conn = conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if self.conn.closed:  # reset (refuse, retarget) while the transport was being made
            _reset(transport)
            return
        self.conn.client = transport
        if self.conn.hung:
            transport.pause_reading()

    def data_received(self, data: bytes) -> None:
        self.conn.from_client(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.client_lost(exc)

    def pause_writing(self) -> None:
        self.conn.client_full = True
        self.conn.update_reading()

    def resume_writing(self) -> None:
        self.conn.client_full = False
        self.conn.update_reading()


class _UpstreamSide(asyncio.Protocol):
    """The proxy's connection to the node."""

    __slots__ = ("conn",)

    def __init__(self, conn: _Conn) -> None:
        self.conn = conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.conn.upstream_made(transport)

    def data_received(self, data: bytes) -> None:
        self.conn.from_upstream(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.upstream_lost(exc)

    def pause_writing(self) -> None:
        self.conn.up_full = True
        self.conn.update_reading()

    def resume_writing(self) -> None:
        self.conn.up_full = False
        self.conn.update_reading()


class _Node:
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
        self.conns: set[_Conn] = set()
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
            _nodelay(client)
            conn = _Conn(self)
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
        }


class _Proxy:
    """All nodes of one proxy on one event loop; commands are JSON-able dicts."""

    def __init__(self, loop: asyncio.AbstractEventLoop, targets: Sequence[tuple[str, int]]):
        self.nodes = [_Node(loop, (host, int(port))) for host, port in targets]

    def bind(self) -> list[int]:
        return [node.bind() for node in self.nodes]

    def command(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Apply one control message; the reply says ok or why not."""
        op = msg.get("op")
        try:
            if op == "ping":
                return {"ok": True}
            if op == "status":
                return {"ok": True, "nodes": [node.status() for node in self.nodes]}
            node = self.nodes[int(msg["node"])]
            if op == "latency":
                dist = Distribution.model_validate(msg["dist"])
                extra = sampler(dist, rng_for(int(msg["seed"]), str(msg["stream"])))
                if msg.get("direction", "up") == "down":
                    node.down_extra = extra
                else:
                    node.extra = extra
            elif op == "partition":
                mode = msg["mode"]
                if mode not in ("hang", "refuse"):
                    raise ValueError(f"partition mode must be 'hang' or 'refuse', not {mode!r}")
                node.partition(mode)
            elif op == "heal":
                node.heal()
            elif op == "retarget":
                node.retarget(str(msg["host"]), int(msg["port"]))
            else:
                raise ValueError(f"unknown proxy command {op!r}")
        except Exception as exc:
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        return {"ok": True}

    def close(self) -> None:
        for node in self.nodes:
            node.close()


# --------------------------------------------------------------------------
# the child process


class _Control(asyncio.Protocol):
    """JSON lines from the parent on stdin; EOF (parent gone) stops the proxy."""

    def __init__(self, proxy: _Proxy, out_fd: int, done: asyncio.Future[None]) -> None:
        self.proxy = proxy
        self.out_fd = out_fd
        self.done = done
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            msg = json.loads(line)
            if msg.get("op") == "close":
                self._finish()
                return
            _write_line(self.out_fd, self.proxy.command(msg))

    def eof_received(self) -> None:
        self._finish()

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish()

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


def _write_line(fd: int, msg: dict[str, Any]) -> None:
    data = json.dumps(msg).encode() + b"\n"
    while data:
        data = data[os.write(fd, data) :]


async def _serve(targets: list[tuple[str, int]], out_fd: int) -> None:
    loop = asyncio.get_running_loop()
    proxy = _Proxy(loop, targets)
    try:
        ports = proxy.bind()
    except OSError as exc:
        _write_line(out_fd, {"ok": False, "error": f"cannot listen: {exc}"})
        return
    done: asyncio.Future[None] = loop.create_future()
    await loop.connect_read_pipe(lambda: _Control(proxy, out_fd, done), sys.stdin.buffer)
    _write_line(out_fd, {"ok": True, "ports": ports, "pid": os.getpid()})
    try:
        await done
    finally:
        proxy.close()


def _child_main() -> None:
    """Entry point of the proxy process: argv[-1] is the JSON list of targets."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    out_fd = os.dup(1)
    os.dup2(2, 1)  # a stray print must not corrupt the control channel
    targets = [(str(host), int(port)) for host, port in json.loads(sys.argv[-1])]
    gc.freeze()  # imports done: keep the collector off the long-lived objects
    asyncio.run(_serve(targets, out_fd))


_BOOT: Final = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from lab.real.proxy import _child_main; _child_main()"
)


# --------------------------------------------------------------------------
# the parent's handle

_live_lock = threading.Lock()
_live: dict[FaultProxy, None] = {}


def _close_all() -> None:
    """atexit: close every proxy this process started (never raises)."""
    with _live_lock:
        proxies = list(_live)
    for proxy in proxies:
        with contextlib.suppress(Exception):
            proxy.close()


def _forget_after_fork() -> None:
    """A forked child does not own its parent's proxies."""
    global _live_lock
    _live_lock = threading.Lock()
    _live.clear()


atexit.register(_close_all)
os.register_at_fork(after_in_child=_forget_after_fork)


class FaultProxy:
    """A fault-injecting TCP proxy in a child process, one port per target.

    Control methods are synchronous, thread-safe and take ~50 us (one line
    over a pipe), so they can be called from the event loop of a run.
    ``node`` is the index of the target in ``targets``.
    """

    def __init__(
        self,
        targets: Sequence[tuple[str, int]],
        *,
        startup_timeout: float = 10.0,
        die_with_parent: bool | None = None,
    ) -> None:
        if not targets:
            raise ValueError("a FaultProxy needs at least one target")
        self.targets = [(str(host), int(port)) for host, port in targets]
        self.startup_timeout = startup_timeout
        self.die_with_parent = die_with_parent
        self._proc: subprocess.Popen[bytes] | None = None
        self._ports: list[int] = []
        self._buffer = b""
        self._lock = threading.Lock()
        self._owner = os.getpid()

    # -- introspection -----------------------------------------------------------

    @property
    def ports(self) -> list[int]:
        """Listening ports, one per target, in target order (empty before start)."""
        return list(self._ports)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Where clients connect instead of the targets."""
        return [(HOST, port) for port in self._ports]

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __repr__(self) -> str:
        state = "alive" if self.alive else "stopped"
        return f"<FaultProxy ports={self._ports} targets={self.targets} pid={self.pid} {state}>"

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> list[int]:
        """Spawn the proxy process; returns the listening ports (idempotent)."""
        with self._lock:
            if self.alive:
                return self.ports
            die = self.die_with_parent
            if die is None:  # PDEATHSIG fires when the forking *thread* exits
                die = threading.current_thread() is threading.main_thread()
            root = str(Path(__file__).resolve().parents[2])
            with _live_lock:
                self._proc = subprocess.Popen(
                    [sys.executable, "-c", _BOOT, root, json.dumps(self.targets)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    close_fds=True,
                    preexec_fn=_pdeathsig_preexec(os.getpid()) if die else None,
                )
                _live[self] = None
            self._buffer = b""
            try:
                reply = self._read_reply(self.startup_timeout)
            except ProxyError:
                self._stop(timeout=1.0)
                raise
            if not reply.get("ok"):
                self._stop(timeout=1.0)
                raise ProxyError(f"fault proxy failed to start: {reply.get('error')}")
            self._ports = [int(port) for port in reply["ports"]]
            return self.ports

    def close(self, timeout: float = 5.0) -> None:
        """Stop the proxy process (resetting every connection through it). Idempotent."""
        with self._lock:
            self._stop(timeout)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- faults ------------------------------------------------------------------

    def add_latency(
        self,
        node: int,
        add: Distribution | float,
        *,
        seed: int = 0,
        stream: str | None = None,
        direction: Literal["up", "down"] = "up",
    ) -> None:
        """Delay client->server data to ``node`` by one sample of ``add`` per chunk
        (``direction="down"``: server->client data, e.g. pub/sub messages).

        ``add`` is a scenario `Distribution` or a constant in seconds; samples
        come from ``rng_for(seed, stream)`` (default stream ``proxy.latency.<node>``),
        so pass the simulator's stream (``fault.<index>``) to get the same draws.
        Replaces any earlier latency on that node.
        """
        self._check(node)
        if not isinstance(add, Distribution):
            add = Distribution(distribution="constant", value=float(add))
        self._call(
            op="latency",
            node=node,
            dist=add.model_dump(exclude_none=True),
            seed=seed,
            stream=stream if stream is not None else f"proxy.latency.{node}",
            direction=direction,
        )

    def partition(self, node: int, mode: PartitionMode = "hang") -> None:
        """Cut ``node`` off: ``refuse`` resets and refuses, ``hang`` blackholes."""
        self._check(node)
        if mode not in ("hang", "refuse"):
            raise ValueError(f"partition mode must be 'hang' or 'refuse', not {mode!r}")
        self._call(op="partition", node=node, mode=mode)

    def heal(self, node: int) -> None:
        """Clear latency and partition of ``node``."""
        self._check(node)
        self._call(op="heal", node=node)

    def retarget(self, node: int, host: str, port: int) -> None:
        """Forward ``node``'s port to another address; its open connections are reset."""
        self._check(node)
        self._call(op="retarget", node=node, host=host, port=int(port))
        self.targets[node] = (host, int(port))

    def status(self) -> list[dict[str, Any]]:
        """Per node: port, target, partition mode, latency on/off, open connections."""
        nodes: list[dict[str, Any]] = self._call(op="status")["nodes"]
        return nodes

    # -- internals ---------------------------------------------------------------

    def _check(self, node: int) -> None:
        if not 0 <= node < len(self.targets):
            raise IndexError(f"node {node} out of range: the proxy has {len(self.targets)}")

    def _call(self, **msg: Any) -> dict[str, Any]:
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None or proc.stdin is None:
                raise ProxyError("the fault proxy is not running (start() it first)")
            try:
                proc.stdin.write(json.dumps(msg).encode() + b"\n")
                proc.stdin.flush()
            except OSError as exc:
                raise ProxyError(f"the fault proxy died: {exc}") from exc
            reply = self._read_reply(_CALL_TIMEOUT)
        if not reply.get("ok"):
            raise ProxyError(f"fault proxy rejected {msg.get('op')}: {reply.get('error')}")
        return reply

    def _read_reply(self, timeout: float) -> dict[str, Any]:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProxyError(f"the fault proxy did not answer within {timeout:.1f}s")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                code = proc.poll()
                raise ProxyError(f"the fault proxy exited (code {code}); see its stderr")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _stop(self, timeout: float) -> None:
        proc = self._proc
        if proc is None or os.getpid() != self._owner:
            return
        if proc.poll() is None and proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.write(b'{"op": "close"}\n')
                proc.stdin.flush()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()  # EOF also stops the child
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        self._ports = []
        with _live_lock:
            _live.pop(self, None)
