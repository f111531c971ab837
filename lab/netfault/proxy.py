"""A real TCP fault proxy between the lab's clients and its servers (any TCP protocol).

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
main thread (as :mod:`lab.processes.spawn` does for servers), and :meth:`FaultProxy.close`
runs at interpreter exit for every proxy still open. Ctrl-C is left to the
parent: the child ignores SIGINT.

Fast path: asyncio Protocols on transports (no stream objects), TCP_NODELAY
on both sides, a chunk is written straight through when its node has no
fault and its connection nothing queued.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Self

from lab.netfault.connection import PartitionMode
from lab.processes.ports import HOST
from lab.processes.spawn import pdeathsig_preexec
from lab.scenario import Distribution

__all__ = ["FaultProxy", "PartitionMode", "ProxyError"]

_CALL_TIMEOUT: Final = 5.0


class ProxyError(RuntimeError):
    """The proxy process failed to start, died, or rejected a command."""


_BOOT: Final = (
    "import sys; sys.path.insert(0, sys.argv[1]); from lab.netfault.child import main; main()"
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
                    preexec_fn=pdeathsig_preexec(os.getpid()) if die else None,
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
        """Per node: port, target, partition mode, latency on/off, open connections and
        the server->client bytes held back by a downstream latency (``held_down``)."""
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
