"""Ctrl-C or SIGTERM during a real run: the run unwinds at an await, then the signal
does what it would have done.

Raised wherever it lands, a KeyboardInterrupt tears an event loop apart: the
run's coroutines are left half-way, their connections and temp dirs closed by
the garbage collector after the loop is gone, each with a traceback on stderr.
As `asyncio.run` does for SIGINT, a signal whose handler is Python code (the
lab's, the default SIGINT one) instead cancels the run's main task; once it
has unwound (connections closed, origin removed), the previous handler gets
the signal (stop every server, then KeyboardInterrupt, or the process dies of
it). A second signal goes to the previous handler at once.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

_Handler = Callable[[int, FrameType | None], Any]
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class CancelOnSignal:
    """Within the block, SIGINT/SIGTERM cancel `task` on `loop`; on leaving it the
    first signal caught is handed to the handler it replaced."""

    def __init__(self, loop: asyncio.AbstractEventLoop, task: asyncio.Future[Any]) -> None:
        self.loop, self.task = loop, task
        self.previous: dict[int, _Handler] = {}
        self.caught: int | None = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.caught is not None:  # twice: no more waiting for the run to unwind
            self._restore()
            self.previous[signum](signum, frame)
            return
        self.caught = signum
        self.loop.call_soon_threadsafe(self.task.cancel)

    def __enter__(self) -> CancelOnSignal:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                current = signal.getsignal(signum)
                if callable(current):  # SIG_DFL / SIG_IGN / foreign: left as they are
                    self.previous[signum] = current
                    signal.signal(signum, self._handle)
        return self

    def _restore(self) -> None:
        for signum, handler in self.previous.items():
            if signal.getsignal(signum) == self._handle:
                signal.signal(signum, handler)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._restore()
        if self.caught is not None:
            self.previous[self.caught](self.caught, None)  # e.g. KeyboardInterrupt
