"""Every executor gives the same summaries, byte for byte (wall-clock fields aside): in
this process, on two local worker processes, and on a real Dask scheduler with two
workers started here on loopback. A failing cell is reported and the others kept;
finished cells are reused by config hash unless --force; Ctrl-C leaves no half run
and no worker behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from lab.cli import main
from lab.execute.executors import Processes
from lab.execute.session import Choice, execute
from lab.execute.work import Task
from lab.scenario import parse_scenario

BIN = Path(sys.executable).parent
WALL_CLOCK = {"wall_time"}
SWEEP = {
    "name": "ex",
    "duration": "3s",
    "warmup": "1s",
    "seeds": [1, 2],
    "keyspace": {"keys": 300},
    "workload": {"mix": {"write": 0.1}, "arrivals": {"rate": "400/s"}},
    "topology": {"capacity": 100},
    "strategies": {
        "around": {"read": "cache-aside", "write": "around", "ttl": "1s"},
        "invalidate": {"read": "cache-aside", "write": "invalidate", "ttl": "1s"},
    },
    "sweep": {"grid": {"strategies.*.ttl": ["200ms", "2s"], "topology.capacity": [50, 200]}},
}


def _write(tmp_path: Path, doc: dict[str, object] = SWEEP) -> Path:
    path = tmp_path / f"{doc['name']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _summaries(root: Path) -> dict[str, str]:
    out = {}
    for file in sorted(root.rglob("summary.json")):
        data = {k: v for k, v in json.loads(file.read_text()).items() if k not in WALL_CLOCK}
        out[str(file.relative_to(root))] = json.dumps(data, sort_keys=True)
    return out


@pytest.fixture
def dask_cluster(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A scheduler and two single-threaded workers on loopback, stopped afterwards."""
    file = tmp_path / "scheduler.json"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    common = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    started = [
        subprocess.Popen(
            [
                BIN / "dask",
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(file),
            ],
            start_new_session=True,
            **common,
        )
    ]
    try:
        deadline = time.monotonic() + 120
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(file.read_text())["address"]
        for _ in range(2):
            started.append(
                subprocess.Popen(
                    [
                        BIN / "dask",
                        "worker",
                        address,
                        "--nthreads",
                        "1",
                        "--host",
                        "127.0.0.1",
                        "--no-dashboard",
                    ],
                    start_new_session=True,
                    **common,
                )
            )
        from distributed import Client

        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=180)
        yield address
    finally:
        for process in reversed(started):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_jobs_1_jobs_2_and_dask_give_byte_identical_summaries(
    tmp_path: Path, dask_cluster: str
) -> None:
    path = _write(tmp_path)
    runs = {
        "jobs1": ["--jobs", "1"],
        "jobs2": ["--jobs", "2"],
        "dask": ["--dask", dask_cluster],
    }
    for name, flags in runs.items():
        assert main(["run", str(path), "--results", str(tmp_path / name), "--quiet", *flags]) == 0
    one = _summaries(tmp_path / "jobs1")
    assert len(one) == 4 * 2 * 2
    assert _summaries(tmp_path / "jobs2") == one
    assert _summaries(tmp_path / "dask") == one


def test_a_failing_cell_is_reported_and_the_others_kept(tmp_path: Path) -> None:
    scenario = parse_scenario(SWEEP)
    cells = scenario.cells(seeds=[1])[:3]
    tasks = [Task(scenario.at(c.point), c) for c in cells]
    tasks[1] = Task(tasks[1].scenario, tasks[1].cell, {"no_such_option": 1})
    failed, written = [], []
    Processes(2).run(
        tasks,
        lambda o: (failed if o.failed else written).append(o),
        lambda *_: None,
    )
    assert [o.task.cell for o in failed] == [cells[1]]
    assert "TypeError" in (failed[0].failed or "")
    assert sorted(o.task.cell.folder for o in written) == sorted(
        c.folder for c in (cells[0], cells[2])
    )


def test_results_are_reused_by_config_hash_unless_forced(tmp_path: Path) -> None:
    scenario = parse_scenario(SWEEP)
    plan = [(scenario.at(c.point), c) for c in scenario.cells(seeds=[1])]
    first = execute(plan, tmp_path, Choice(jobs=1), progress=False)
    assert len(first.written) == 8 and not first.reused
    again = execute(plan, tmp_path, Choice(jobs=1), progress=False)
    assert len(again.reused) == 8 and not again.written
    changed = parse_scenario({**SWEEP, "keyspace": {"keys": 301}})
    other = execute(
        [(changed.at(c.point), c) for c in changed.cells(seeds=[1])][:2],
        tmp_path,
        Choice(jobs=1),
        progress=False,
    )
    assert len(other.written) == 2  # another configuration: run again
    forced = execute(plan[:2], tmp_path, Choice(jobs=1, force=True), progress=False)
    assert len(forced.written) == 2


def test_ctrl_c_cancels_cleanly(tmp_path: Path) -> None:
    doc = {**SWEEP, "name": "slow", "duration": "30s", "warmup": "1s"}
    doc["workload"] = {"mix": {"write": 0.1}, "arrivals": {"rate": "3000/s"}}
    path = _write(tmp_path, doc)
    out = tmp_path / "out"
    process = subprocess.Popen(
        [BIN / "cachelab", "run", str(path), "--results", str(out), "--jobs", "2", "--quiet"],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not list(out.rglob("summary.json")) and time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole group
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not [p for p in out.rglob(".*") if p.name.startswith((".tmp-", ".old-"))]
    for run in {p.parent for p in out.rglob("summary.json")}:
        assert {f.name for f in run.iterdir()} >= {
            "summary.json",
            "scenario.yaml",
            "timeseries.csv",
        }
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the workers and the fork server are gone
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        pytest.fail("worker processes outlived the interrupted command")


def _mark(folder: str, scenario: str) -> None:
    """A side job: proves it ran in a worker after every cell of `scenario` was written."""
    runs = sorted(p.parent.name for p in (Path(folder) / scenario).rglob("summary.json"))
    (Path(folder) / f"side-{scenario}-{os.getpid()}.json").write_text(json.dumps(runs))


def test_simulator_cells_and_side_jobs_run_beside_the_real_cells(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`bench` on local workers: the in-process (real) cells one at a time here while
    simulator cells and each finished scenario's side job run on the workers; the
    summaries are those of a run on one process, and a side job sees every cell."""
    from functools import partial

    from lab import backends

    monkeypatch.setitem(backends.REGISTRY, "dict", "tests.unit.dict_backend:DictBackend")
    doc = {k: v for k, v in SWEEP.items() if k != "sweep"}
    scenario = parse_scenario({**doc, "name": "mixed", "backends": ["sim", "dict"]})
    plan = [(scenario.at(c.point), c) for c in scenario.cells()]
    jobs: list[str] = []

    def side(name: str) -> partial[None]:
        jobs.append(name)
        return partial(_mark, str(tmp_path / "two"), name)

    one = execute(plan, tmp_path / "one", Choice(jobs=1), progress=False)
    two = execute(plan, tmp_path / "two", Choice(jobs=2), progress=False, side_jobs=side)
    assert len(one.written) == len(two.written) == 8 and not two.failed
    assert jobs == ["mixed"]
    (marked,) = tmp_path.joinpath("two").glob("side-mixed-*.json")
    assert int(marked.stem.rsplit("-", 1)[1]) != os.getpid()  # on a worker
    assert len(json.loads(marked.read_text())) == 8
    sim = {k: v for k, v in _summaries(tmp_path / "one").items() if ".sim." in k}
    assert sim and {k: _summaries(tmp_path / "two")[k] for k in sim} == sim


def _niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, 0)


def test_workers_beside_real_cells_run_niced_until_the_real_cells_end() -> None:
    """Simulator workers started beside real-server cells yield the CPU to them (the
    real cell's load generator and servers first); afterwards they run at normal
    priority again, those already started and those started later."""
    from lab.execute.executors import BESIDE_NICENESS, Pool

    base = _niceness()
    pool = Pool(2, niceness=BESIDE_NICENESS)
    try:
        niced = {f.result() for f in [pool.pool.submit(_niceness) for _ in range(4)]}
        assert niced == {min(base + BESIDE_NICENESS, 19)}
        pool.unnice()
        after = {f.result() for f in [pool.pool.submit(_niceness) for _ in range(4)]}
        if os.geteuid() == 0 or base >= _nice_limit():
            assert after == {base}
        else:  # not permitted to lower a niceness: they stay niced, nothing fails
            assert after == niced
    finally:
        pool.close()
        pool.shutdown()


def _nice_limit() -> int:
    """The niceness an unprivileged process may lower itself to (RLIMIT_NICE: 20 - rlim)."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NICE)
    return 20 - soft if soft != resource.RLIM_INFINITY else -20
