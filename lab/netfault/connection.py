"""One proxied TCP connection: client side, upstream side, delays and faults.

Data from the client is forwarded at once when its port has no fault and
nothing is queued; under a latency fault each chunk waits for a fresh sample,
never overtaking the chunk ahead of it. A hang stops forwarding both ways, a
reset closes both sides with RST. Flow control pauses reading from one side
while the other cannot take more.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final, Literal, Protocol

PartitionMode = Literal["hang", "refuse"]

_CONNECT_TIMEOUT: Final = 5.0
"""Seconds to reach a target; loopback connects take microseconds or fail at once."""
_MAX_QUEUED: Final = 4 * 1024 * 1024
"""Bytes held per connection (delayed or not yet connected) before reading from the
client pauses: back-pressure instead of unbounded memory."""
_LINGER_RESET: Final = struct.pack("ii", 1, 0)
_CLOCK_SLACK: Final = time.get_clock_info("monotonic").resolution


class Port(Protocol):
    """What a connection needs from the listening port it came through."""

    loop: asyncio.AbstractEventLoop
    target: tuple[str, int]
    mode: PartitionMode | None
    extra: Callable[[], float] | None
    down_extra: Callable[[], float] | None
    conns: set[Connection]


def nodelay(sock: Any) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def reset_transport(transport: asyncio.Transport | None) -> None:
    """Close with RST (SO_LINGER 0), so the peer sees ECONNRESET, not an orderly EOF."""
    if transport is None or transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    transport.abort()


class Connection:
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

    def __init__(self, node: Port) -> None:
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
            reset_transport(transport)
            return
        self.upstream = transport
        nodelay(transport.get_extra_info("socket"))
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
        reset_transport(self.client)
        reset_transport(self.upstream)
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
            reset_transport(self.upstream)
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
            reset_transport(self.client)
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

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if self.conn.closed:  # reset (refuse, retarget) while the transport was being made
            reset_transport(transport)
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

    def __init__(self, conn: Connection) -> None:
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
