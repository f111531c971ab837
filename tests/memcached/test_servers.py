"""Real memcached servers: started on free ports, stopped, never orphaned."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from lab.memcached.control import Control
from lab.memcached.server import MemcachedServer, Options, start_nodes
from lab.processes.binaries import Binary
from lab.processes.procfs import process_alive
from tests.helpers import interruptible, wait_gone


def test_nodes_start_with_the_options_and_stop(binary: Binary) -> None:
    group = start_nodes(2, Options(memory_mib=8, threads=2, growth_factor=1.5), binary=binary)
    try:
        assert len(set(group.ports)) == 2
        settings = group[0].stats("settings")
        assert settings["maxbytes"] == str(8 << 20)
        assert settings["num_threads"] == "2"
        assert float(settings["growth_factor"]) == 1.5
        assert settings["slab_automove"] == "0"
        pids = [s.pid for s in group]
    finally:
        group.stop()
    assert all(pid is not None and not process_alive(pid) for pid in pids)
    assert all(s.dir is None for s in group)


def test_restart_is_cold_on_the_same_port(binary: Binary) -> None:
    with MemcachedServer(Options(memory_mib=8), binary=binary) as server:
        port = server.port
        with Control(server.address) as control:
            control.lines("set k 0 0 1\r\nx", end=b"STORED")
            assert control.get(["k"]) == {"k": b"x"}
        server.restart()
        assert server.port == port
        with Control(server.address) as control:
            assert control.get(["k"]) == {}


SCRIPT = textwrap.dedent(
    """
    import sys, time
    from lab.memcached.server import start_nodes
    group = start_nodes(2)
    print(" ".join(str(s.pid) for s in group), flush=True)
    time.sleep(60)
    """
)


def _lab_with_servers(tmp_path: Path) -> tuple[subprocess.Popen[str], list[int]]:
    env = dict(os.environ, TMPDIR=str(tmp_path))
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=Path(__file__).parents[2],
        start_new_session=True,
        preexec_fn=interruptible,  # SIGINT reaches it even if the suite runs with it ignored
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    pids = [int(p) for p in line.split()]
    assert len(pids) == 2, line
    return proc, pids


def test_no_orphan_after_ctrl_c_or_sigkill_of_the_lab(binary: Binary, tmp_path: Path) -> None:
    for how in (signal.SIGINT, signal.SIGKILL):
        proc, pids = _lab_with_servers(tmp_path)
        try:
            os.kill(proc.pid, how)
            proc.wait(timeout=20)
            assert wait_gone(pids, timeout=10) == [], f"memcached survived {how.name}"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for pid in pids:
                if process_alive(pid):
                    os.kill(pid, signal.SIGKILL)
            if proc.stdout is not None:
                proc.stdout.close()
