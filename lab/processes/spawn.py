"""Forking a child that dies with the lab: PR_SET_PDEATHSIG, from a thread that lasts.

PR_SET_PDEATHSIG fires when the *thread* that forked the child exits. A
server forked by a short-lived worker (a fault restarting a crashed node in
``asyncio.to_thread``) could therefore not be armed, and a SIGKILLed lab
orphaned it. Such forks go through one daemon "spawner" thread that lives as
long as the process.
"""

from __future__ import annotations

import ctypes
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import IO, Any, Final, TypeVar

_T = TypeVar("_T")


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


def pdeathsig_preexec(parent_pid: int) -> Callable[[], None] | None:
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


class _Spawner:
    """Forks children for threads other than the main one, from one daemon thread.

    This thread never returns, so it ends only with the process.
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


def spawn(
    argv: list[str], *, log: IO[bytes], cwd: str, die_with_parent: bool | None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` with stdout and stderr to ``log``.

    ``die_with_parent``: None (default) arms PDEATHSIG, forking from the
    spawner thread when called from any thread but the main one; True arms it
    in the calling thread; False does not arm it.
    """
    die = die_with_parent is not False
    preexec = pdeathsig_preexec(os.getpid()) if die else None
    # PDEATHSIG follows the forking thread: fork from one that lives as long as we do.
    via_spawner = (
        preexec is not None
        and die_with_parent is None
        and threading.current_thread() is not threading.main_thread()
    )

    def fork() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            close_fds=True,
            preexec_fn=preexec,
        )

    return _spawner.call(fork) if via_spawner else fork()


def _after_fork_in_child() -> None:
    """The parent's spawner thread does not exist in a forked child."""
    global _spawner
    _spawner = _Spawner()


os.register_at_fork(after_in_child=_after_fork_in_child)
