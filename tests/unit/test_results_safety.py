"""Results written and read by careless or concurrent users: two processes writing one
folder, the same run found in two folders, corrupt files."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lab.report.table import report
from lab.results import CorruptResult, load_all, load_timeseries, write_run
from lab.runner import run_cell
from tests.helpers import make_scenario

FILES = [
    "distributions.csv",
    "scenario.yaml",
    "staleness_curve.csv",
    "summary.json",
    "timeseries.csv",
]
MANY_SEEDS = {
    "name": "race",
    "seeds": list(range(1, 31)),
    "requests": 20,
    "keyspace": {"keys": 100},
    "workload": {"arrivals": {"process": "poisson", "rate": "2000/s"}},
    "strategies": {"aside": {"read": "cache-aside", "write": "invalidate", "ttl": "1m"}},
}


def _cachelab(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lab", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _complete_runs(folder: Path) -> list[str]:
    runs = sorted(p.name for p in folder.iterdir())
    for name in runs:
        assert sorted(p.name for p in (folder / name).iterdir()) == FILES, name
        json.loads((folder / name / "summary.json").read_text())
    return runs


def test_two_processes_writing_one_results_folder(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(MANY_SEEDS))
    seeds = [str(seed) for seed in range(1, 31)]
    for attempt in range(3):
        out = tmp_path / f"out{attempt}"
        # one goes up the seeds, the other down: they meet on the same runs midway
        procs = [
            _cachelab(
                *("run", "s.yaml", "--results", out.name, "--quiet", "--no-progress"),
                *(arg for seed in order for arg in ("--seed", seed)),
                cwd=tmp_path,
            )
            for order in (seeds, seeds[::-1])
        ]
        for proc in procs:
            _, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err
            assert "30 runs written" in err and "Traceback" not in err
        runs = _complete_runs(out / "race")
        assert runs == sorted(f"aside.sim.s{seed}" for seed in seeds)  # none lost


REPLACE_IN_A_LOOP = """
import sys
from lab.results import write_run
from lab.runner import run_cell
from tests.helpers import make_scenario
scenario = make_scenario(requests=50)
result = run_cell(scenario, scenario.cells()[0])
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.readline()  # start together
for _ in range(40):
    write_run(sys.argv[1], scenario, result)
"""


def test_processes_replacing_one_run_in_a_loop_never_fail(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", REPLACE_IN_A_LOOP, str(tmp_path)],
            cwd=repo,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    assert _complete_runs(tmp_path / "t") == ["cache-aside.sim.s1"]
    assert [p.name for p in (tmp_path / "t").iterdir()] == ["cache-aside.sim.s1"]  # no leftovers


def test_threads_replacing_one_run_never_fail(tmp_path: Path) -> None:
    scenario = make_scenario(requests=50)
    result = run_cell(scenario, scenario.cells()[0])
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for _ in range(15):
                write_run(tmp_path, scenario, result)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _complete_runs(tmp_path / "t") == ["cache-aside.sim.s1"]
    assert [p.name for p in (tmp_path / "t").iterdir()] == ["cache-aside.sim.s1"]  # no leftovers


def test_a_writer_killed_mid_write_is_swept_by_the_next(tmp_path: Path) -> None:
    scenario = make_scenario(requests=50)
    result = run_cell(scenario, scenario.cells()[0])
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(dead.stdout)
    left = tmp_path / "t" / f".tmp-cache-aside.sim.s1-{pid}-0123456789ab"
    left.mkdir(parents=True)
    (left / "summary.json").write_text("{")
    write_run(tmp_path, scenario, result)
    assert not left.exists()


def _two_folders(tmp_path: Path) -> tuple[Path, Path]:
    scenario = make_scenario(requests=300)
    result = run_cell(scenario, scenario.cells()[0])
    before, after = tmp_path / "before", tmp_path / "after"
    write_run(before, scenario, result)
    shutil.copytree(before, after)
    summary = after / "t" / "cache-aside.sim.s1" / "summary.json"
    data = json.loads(summary.read_text())
    data["hit_ratio"] = 0.5
    summary.write_text(json.dumps(data))
    return before, after


def test_the_same_run_in_two_folders_is_never_averaged(tmp_path: Path) -> None:
    before, after = _two_folders(tmp_path)
    frame = load_all(before, after)
    assert sorted(frame["strategy"]) == sorted(
        [f"cache-aside [{before}]", f"cache-aside [{after}]"]
    )
    original = json.loads((before / "t/cache-aside.sim.s1/summary.json").read_text())["hit_ratio"]
    table = report(frame)
    rows = [line for line in table.splitlines() if line.startswith("| cache-aside")]
    assert len(rows) == 2 and all("| sim | 1 |" in row for row in rows)
    assert f"{100 * original:.2f}%" in table and "50.00%" in table
    merged = f"{100 * (original + 0.5) / 2:.2f}%"
    assert merged not in table
    # the same folder given twice is one run, not a copy
    assert len(load_all(before, before)) == 1
    assert list(load_all(before, before)["strategy"]) == ["cache-aside"]


def test_one_configuration_split_by_seed_over_folders_is_merged(tmp_path: Path) -> None:
    scenario = make_scenario(requests=300, seeds=[1, 2])
    one, two = scenario.cells()
    write_run(tmp_path / "a", scenario, run_cell(scenario, one))
    write_run(tmp_path / "b", scenario, run_cell(scenario, two))
    frame = load_all(tmp_path / "a", tmp_path / "b")
    assert list(frame["strategy"]) == ["cache-aside", "cache-aside"]
    assert "| cache-aside | sim | 2 |" in report(frame)


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text[: len(text) // 2],  # truncated
        lambda text: "",
        lambda text: "[1, 2]",
        lambda text: re.sub(r'"seed": \d+', '"seed": "one"', text),
        lambda text: "\xff\xfe".encode("latin-1").decode("latin-1") + text,
        lambda text: text.replace('"scenario": "t"', '"scenario": "../../outside"'),
        lambda text: text.replace('"strategy": "cache-aside"', '"strategy": "a\\nb"'),
    ],
)
def test_a_corrupt_summary_is_named_and_skipped(tmp_path: Path, damage: object) -> None:
    scenario = make_scenario(requests=300, seeds=[1, 2])
    for cell in scenario.cells():
        write_run(tmp_path, scenario, run_cell(scenario, cell))
    bad = tmp_path / "t" / "cache-aside.sim.s2" / "summary.json"
    text = bad.read_text()
    damaged = damage(text)  # type: ignore[operator]
    bad.write_bytes(damaged.encode("latin-1") if damaged.startswith("\xff") else damaged.encode())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = load_all(tmp_path)
    assert list(frame["seed"]) == [1]
    named = [w for w in caught if issubclass(w.category, CorruptResult)]
    assert len(named) == 1 and str(bad) in str(named[0].message)
    assert "\n" not in str(named[0].message)


def test_a_corrupt_timeseries_is_named_and_skipped(tmp_path: Path) -> None:
    scenario = make_scenario(requests=300, seeds=[1, 2])
    for cell in scenario.cells():
        write_run(tmp_path, scenario, run_cell(scenario, cell))
    bad = tmp_path / "t" / "cache-aside.sim.s1" / "timeseries.csv"
    bad.write_bytes(b"\xff\xfe\x00garbage\n\x00\x01")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        series = load_timeseries(tmp_path)
    assert set(series["seed"]) == {2}
    assert any(str(bad) in str(w.message) for w in caught)
    assert isinstance(series, pd.DataFrame)


def test_report_command_warns_in_one_line_and_goes_on(tmp_path: Path) -> None:
    scenario = make_scenario(requests=300, seeds=[1, 2])
    for cell in scenario.cells():
        write_run(tmp_path / "out", scenario, run_cell(scenario, cell))
    bad = tmp_path / "out" / "t" / "cache-aside.sim.s2" / "summary.json"
    bad.write_text('{"scenario": "t", "strat')
    done = subprocess.run(
        [sys.executable, "-m", "lab", "report", "out"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(
        f"cachelab: warning: {Path('out/t/cache-aside.sim.s2/summary.json')}"
    )
    assert "| cache-aside | sim | 1 |" in done.stdout


def test_a_stray_file_where_a_run_goes_is_replaced(tmp_path: Path) -> None:
    scenario = make_scenario(requests=50)
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "cache-aside.sim.s1").write_text("not a run")
    write_run(tmp_path, scenario, run_cell(scenario, scenario.cells()[0]))
    assert _complete_runs(tmp_path / "t") == ["cache-aside.sim.s1"]
