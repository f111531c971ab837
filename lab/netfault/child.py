"""The proxy process: its event loop, its ports, and the control channel to the parent.

The parent writes one JSON command per line on the child's stdin and reads
one JSON reply per line; EOF on stdin (the parent closed it, or died) stops
the child. Ctrl-C is the parent's to handle: the child ignores SIGINT.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from lab.netfault.listener import Listener
from lab.sampling import rng_for, sampler
from lab.scenario import Distribution


class Router:
    """All nodes of one proxy on one event loop; commands are JSON-able dicts."""

    def __init__(self, loop: asyncio.AbstractEventLoop, targets: Sequence[tuple[str, int]]):
        self.nodes = [Listener(loop, (host, int(port))) for host, port in targets]

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


class _Control(asyncio.Protocol):
    """JSON lines from the parent on stdin; EOF (parent gone) stops the proxy."""

    def __init__(self, proxy: Router, out_fd: int, done: asyncio.Future[None]) -> None:
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
    proxy = Router(loop, targets)
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


def main() -> None:
    """Entry point of the proxy process: argv[-1] is the JSON list of targets."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    out_fd = os.dup(1)
    os.dup2(2, 1)  # a stray print must not corrupt the control channel
    targets = [(str(host), int(port)) for host, port in json.loads(sys.argv[-1])]
    gc.freeze()  # imports done: keep the collector off the long-lived objects
    asyncio.run(_serve(targets, out_fd))
