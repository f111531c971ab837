"""Private working directories of the lab (servers', the SQLite origin's), and
sweeping the stale ones.

Only a SIGKILLed lab process leaves a directory behind (a stop, a close, SIGINT
and SIGTERM remove it). Each records its owner in ``owner.json``; the next lab
process removes the ``cachelab-*`` directories whose owner *and* server (if the
dir has one) are both dead.
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


def make_owned_dir(prefix: str) -> Path:
    """A new private directory with no server in it (e.g. the SQLite origin's),
    its owner recorded at once: a SIGKILL leaves it to the next run's sweep."""
    directory = make_workdir(prefix)
    write_owner(directory)
    return directory


def write_owner(directory: Path, server_pid: int | None = None) -> None:
    """Record who owns a dir (and which server runs in it, if one does) so a later
    process can sweep it safely."""
    me = os.getpid()
    owner: dict[str, object] = {"owner_pid": me, "owner_start": start_time(me)}
    if server_pid is not None:
        owner |= {"server_pid": server_pid, "server_start": start_time(server_pid)}
    with contextlib.suppress(OSError):
        (directory / OWNER_NAME).write_text(json.dumps(owner), encoding="utf-8")


def sweep_stale_dirs(temp_root: str | Path | None = None) -> list[Path]:
    """Delete ``cachelab-*`` dirs whose owner *and* server (if any) are both dead.

    Runs automatically once per process before its first dir is made, and at
    the start of ``cachelab run`` / ``bench``.
    Directories without an owner file are never touched. Returns what it removed.
    """
    root = Path(temp_root) if temp_root is not None else Path(tempfile.gettempdir())
    removed: list[Path] = []
    for path in root.glob(f"{DIR_PREFIX}*"):
        try:
            owner = json.loads((path / OWNER_NAME).read_text(encoding="utf-8"))
            owner_alive = process_alive(int(owner["owner_pid"]), owner.get("owner_start"))
            server_alive = "server_pid" in owner and process_alive(
                int(owner["server_pid"]), owner.get("server_start")
            )
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
