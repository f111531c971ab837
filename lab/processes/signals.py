"""SIGTERM/SIGINT stop every server first, then do what they did before; a command
may also have SIGTERM end it the way Ctrl-C does (`sigterm_as_interrupt`)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from lab.processes.registry import stop_all

_SignalHandler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None

_lock = threading.Lock()
_installed = False


def _make_handler(previous: _SignalHandler) -> Callable[[int, FrameType | None], None]:
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


def install_signal_handlers() -> None:
    """Install SIGTERM/SIGINT handlers once (main thread only; lazy, not on import)."""
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    with _lock:
        if _installed:
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(signum)
            if previous is signal.SIG_IGN or previous is None:
                continue  # ignored on purpose / installed outside Python: respect it
            signal.signal(signum, _make_handler(previous))
        _installed = True


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block SIGTERM raises ``KeyboardInterrupt`` as SIGINT does, so a
    terminated command unwinds the same way: its ``finally`` blocks and exit
    handlers stop servers and remove temp dirs, and it says why it stopped.

    Main thread only; an ignored SIGTERM stays ignored. The previous handler comes
    back afterwards unless the server handlers (`install_signal_handlers`) have
    wrapped this one meanwhile: they then chain to it, which is still an interrupt.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_IGN or previous is None:
        yield
        return
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is _interrupt:
            signal.signal(signal.SIGTERM, previous)
