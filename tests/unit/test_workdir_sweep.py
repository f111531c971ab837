"""Which lab dirs the sweep removes: only those whose owner (and server, if any) is dead.

No server is needed: owners are this process (alive) and a child that has exited
(dead); the SQLite origin's dir has an owner and no server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from lab.processes.procfs import start_time
from lab.processes.workdir import OWNER_NAME, make_owned_dir, sweep_stale_dirs


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def lab_dir(root: Path, name: str, owner: dict[str, object] | None) -> Path:
    path = root / name
    path.mkdir()
    if owner is not None:
        (path / OWNER_NAME).write_text(json.dumps(owner))
    return path


def test_dirs_of_dead_owners_go_and_the_rest_stay(tmp_path: Path) -> None:
    me, dead = os.getpid(), dead_pid()
    alive_owner = {"owner_pid": me, "owner_start": start_time(me)}
    dead_owner = {"owner_pid": dead, "owner_start": "1"}
    origin_dead = lab_dir(tmp_path, "cachelab-origin-a", dead_owner)
    origin_alive = lab_dir(tmp_path, "cachelab-origin-b", alive_owner)
    server_alive = lab_dir(  # owner dead, its server still running (here: this process)
        tmp_path, "cachelab-redis-1-c", {**dead_owner, "server_pid": me}
    )
    server_dead = lab_dir(tmp_path, "cachelab-redis-2-d", {**dead_owner, "server_pid": dead})
    no_owner = lab_dir(tmp_path, "cachelab-origin-e", None)  # not ours to judge
    broken = lab_dir(tmp_path, "cachelab-origin-f", None)
    (broken / OWNER_NAME).write_text("{trunc")
    other = lab_dir(tmp_path, "someone-else", dead_owner)

    removed = sweep_stale_dirs(tmp_path)

    assert set(removed) == {origin_dead, server_dead}
    for kept in (origin_alive, server_alive, no_owner, broken, other):
        assert kept.exists(), kept


def test_an_owned_dir_records_this_process_and_survives_its_sweep(tmp_path: Path) -> None:
    old = tempfile.tempdir
    tempfile.tempdir = str(tmp_path)
    try:
        directory = make_owned_dir("cachelab-origin-")
    finally:
        tempfile.tempdir = old
    owner = json.loads((directory / OWNER_NAME).read_text())
    assert directory.parent == tmp_path and directory.name.startswith("cachelab-origin-")
    assert owner == {"owner_pid": os.getpid(), "owner_start": start_time(os.getpid())}
    assert sweep_stale_dirs(tmp_path) == [] and directory.exists()
