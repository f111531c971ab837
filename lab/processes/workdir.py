"""Private working directories of server processes, and sweeping the stale ones.

Only a SIGKILLed lab process leaves a directory behind (a stop removes it).
Each records its owner in ``owner.json``; the next lab process removes the
``cachelab-*`` directories whose owner *and* server are both dead.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Final

from lab.processes.procfs import process_alive, start_time

DIR_PREFIX: Final = "cachelab-"
OWNER_NAME: Final = "owner.json"


def make_workdir(prefix: str) -> Path:
    """A new private directory ``<tmp>/<prefix>...``; sweeps stale ones first, once."""
    _sweep_once()
    return Path(tempfile.mkdtemp(prefix=prefix))


def write_owner(directory: Path, server_pid: int) -> None:
    """Record who owns a server dir so a later process can sweep it safely."""
    me = os.getpid()
    owner = {
        "owner_pid": me,
        "owner_start": start_time(me),
        "server_pid": server_pid,
        "server_start": start_time(server_pid),
    }
    with contextlib.suppress(OSError):
        (directory / OWNER_NAME).write_text(json.dumps(owner), encoding="utf-8")


def sweep_stale_dirs(temp_root: str | Path | None = None) -> list[Path]:
    """Delete ``cachelab-*`` server dirs whose owner *and* server are both dead.

    Runs automatically once per process before the first server starts.
    Directories without an owner file are never touched. Returns what it removed.
    """
    root = Path(temp_root) if temp_root is not None else Path(tempfile.gettempdir())
    removed: list[Path] = []
    for path in root.glob(f"{DIR_PREFIX}*"):
        try:
            owner = json.loads((path / OWNER_NAME).read_text(encoding="utf-8"))
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
