"""What the kernel says about a process: alive, zombie, stopped (Linux /proc)."""

from __future__ import annotations

import os
import time


def proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name, or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            data = fh.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return None
    return data.rsplit(")", 1)[-1].split()


def start_time(pid: int) -> str | None:
    """Kernel start time of ``pid`` (guards against PID reuse), Linux only."""
    fields = proc_stat(pid)
    return fields[19] if fields is not None and len(fields) > 19 else None


def process_alive(pid: int, started: str | None = None) -> bool:
    """Whether ``pid`` is a running process; zombies count as gone.

    If ``started`` (the start time from /proc) is given, a different process that
    reused the PID also counts as gone.
    """
    if os.path.isdir("/proc/self"):
        fields = proc_stat(pid)
        if fields is None or not fields or fields[0] in ("Z", "X", "x"):
            return False
        return started is None or (len(fields) > 19 and fields[19] == started)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_state(pid: int, *, stopped: bool, timeout: float = 1.0) -> None:
    """Wait until the kernel reports the process (not) stopped, on Linux."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fields = proc_stat(pid)
        if fields is None:
            return
        if (fields[0] in ("T", "t")) == stopped:
            return
        time.sleep(0.005)
