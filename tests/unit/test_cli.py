"""The cachelab command as a user runs it: real subprocesses, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from lab.results import load_all, load_distributions, load_staleness_curves, load_timeseries

SMALL = {
    "name": "cli-small",
    "description": "tiny",
    "seeds": [1, 2],
    "requests": 3000,
    "keyspace": {"keys": 500},
    "workload": {"arrivals": {"process": "poisson", "rate": "2000/s"}},
    "topology": {"nodes": 2, "capacity": 100},
    "strategies": {
        "aside": {"read": "cache-aside", "write": "invalidate", "ttl": "1m"},
        "ttl": {"read": "cache-aside", "write": "around", "ttl": "1s"},
    },
}


def cachelab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lab", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def write(tmp_path: Path, data: dict[str, object], name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_run_writes_results_that_load_into_pandas(tmp_path: Path) -> None:
    scenario = write(tmp_path, SMALL)
    done = cachelab("run", str(scenario), "--results", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "| aside | sim | 2 |" in done.stdout  # the comparison table, means over 2 seeds
    runs = sorted(p.name for p in (tmp_path / "out" / "cli-small").iterdir())
    assert runs == ["aside.sim.s1", "aside.sim.s2", "ttl.sim.s1", "ttl.sim.s2"]
    run = tmp_path / "out" / "cli-small" / "aside.sim.s1"
    assert sorted(p.name for p in run.iterdir()) == [
        "distributions.csv",
        "scenario.yaml",
        "staleness_curve.csv",
        "summary.json",
        "timeseries.csv",
    ]
    as_run = yaml.safe_load((run / "scenario.yaml").read_text())
    assert as_run["seed"] == 1 and as_run["scenario"]["name"] == "cli-small"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["config_hash"] == as_run["config_hash"]
    frame = load_all(tmp_path / "out")
    assert list(frame.columns[:4]) == ["scenario", "strategy", "backend", "seed"]
    assert len(frame) == 4 and frame["hit_ratio"].between(0, 1).all()
    dists = load_distributions(tmp_path / "out")
    reads = dists[(dists["metric"] == "read_latency") & (dists["strategy"] == "aside")]
    assert int(reads["count"].sum()) == int(frame.loc[frame["strategy"] == "aside", "reads"].sum())
    curves = load_staleness_curves(tmp_path / "out")
    assert {"since_lo", "since_hi", "reads", "stale_reads", "p_fresh"} <= set(curves.columns)
    series = load_timeseries(tmp_path / "out")
    assert {"strategy", "seed", "hit_ratio", "read_p99"} <= set(series.columns)
    assert isinstance(series, pd.DataFrame) and len(series) >= 4


def test_bad_scenario_is_one_line_exit_2_and_nothing_written(tmp_path: Path) -> None:
    bad = dict(SMALL, workload={"mix": {"read": 1.5}})
    scenario = write(tmp_path, bad, "x.yaml")
    for command in (["run", "x.yaml", "--results", "out"], ["validate", "x.yaml"]):
        done = cachelab(*command, cwd=tmp_path)
        assert done.returncode == 2
        assert done.stderr == (
            "cachelab: error: x.yaml: workload.mix.read: must be between 0 and 1, got 1.5\n"
        )
        assert done.stdout == ""
    assert not (tmp_path / "out").exists()
    assert scenario.exists()


def test_one_bad_file_among_several_stops_everything(tmp_path: Path) -> None:
    write(tmp_path, SMALL, "a.yaml")
    write(tmp_path, dict(SMALL, topology={"nodez": 3}), "b.yaml")
    done = cachelab("run", "a.yaml", "b.yaml", "--results", "out", cwd=tmp_path)
    assert done.returncode == 2
    assert "b.yaml: topology.nodez: unknown field" in done.stderr
    assert not (tmp_path / "out").exists()


def test_validate_and_list(tmp_path: Path) -> None:
    write(tmp_path, SMALL)
    done = cachelab("validate", "s.yaml", cwd=tmp_path)
    assert done.returncode == 0
    assert "s.yaml: ok (cli-small: 2 strategies, 4 runs; about " in done.stdout
    repo = Path(__file__).resolve().parents[2]
    listed = cachelab("list", cwd=repo)
    assert listed.returncode == 0
    assert "scenarios/patterns-overview.yaml" in listed.stdout
    for part in ("cache-aside", "around", "invalidate", "update"):
        assert part in listed.stdout


def test_report_from_existing_results(tmp_path: Path) -> None:
    write(tmp_path, SMALL)
    assert cachelab("run", "s.yaml", "--results", "out", "--quiet", cwd=tmp_path).returncode == 0
    done = cachelab("report", "out", "--out", "r.md", cwd=tmp_path)
    assert done.returncode == 0
    assert "## cli-small" in (tmp_path / "r.md").read_text()
    empty = cachelab("report", "nothing-here", cwd=tmp_path)
    assert empty.returncode == 2 and "no runs found" in empty.stderr


def test_rerun_replaces_a_run_atomically(tmp_path: Path) -> None:
    write(tmp_path, SMALL)
    args = ("run", "s.yaml", "--results", "out", "--quiet", "--strategy", "aside", "--seed", "1")
    assert cachelab(*args, cwd=tmp_path).returncode == 0
    first = (tmp_path / "out/cli-small/aside.sim.s1/summary.json").read_text()
    reused = cachelab(*args, cwd=tmp_path)  # the same configuration: kept as it is
    assert reused.returncode == 0 and "0 runs written, 1 reused" in reused.stderr
    assert (tmp_path / "out/cli-small/aside.sim.s1/summary.json").read_text() == first
    assert cachelab(*args, "--force", cwd=tmp_path).returncode == 0
    second = (tmp_path / "out/cli-small/aside.sim.s1/summary.json").read_text()
    strip = lambda text: {k: v for k, v in json.loads(text).items() if k != "wall_time"}  # noqa: E731
    assert strip(first) == strip(second)
    leftovers = [p.name for p in (tmp_path / "out/cli-small").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_progress_bar_when_asked(tmp_path: Path) -> None:
    write(tmp_path, SMALL)
    args = ["run", "s.yaml", "--results", "out", "--quiet", "--progress", "--seed", "1"]
    done = cachelab(*args, "--jobs", "1", cwd=tmp_path)
    assert done.returncode == 0
    frames = [f for f in done.stderr.replace("\r", "\n").splitlines() if " of 2)" in f]
    assert frames[-1].startswith("cli-small ttl sim s1 (run 2 of 2): 100%")
    assert any("(run 1 of 2):" in f and "  0%" not in f for f in frames)  # it moved
    assert not any("/2 runs" in f or "0.0/" in f for f in frames)
    # on worker processes: one bar over the runs, moving as each finishes
    done = cachelab(*args, "--jobs", "2", "--force", cwd=tmp_path)
    assert done.returncode == 0
    frames = done.stderr.replace("\r", "\n").splitlines()
    assert any(f.startswith("2 of 2 runs done on 2 local worker processes: 100%") for f in frames)


def test_results_that_cannot_hold_runs_are_refused_before_running(tmp_path: Path) -> None:
    write(tmp_path, SMALL)
    (tmp_path / "taken").write_text("a file")
    for results, problem in (
        ("taken", "--results taken: taken is not a folder"),
        ("taken/sub", "--results taken/sub: taken is not a folder"),
        ("/proc/cachelab-results", "--results /proc/cachelab-results: cannot write there"),
    ):
        done = cachelab("run", "s.yaml", "--results", results, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(f"cachelab: error: {problem}")
        assert done.stderr.count("\n") == 1 and done.stdout == ""
    assert (tmp_path / "taken").read_text() == "a file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml", "taken"]
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "cli-small").write_text("where the scenario's folder goes")
    done = cachelab("run", "s.yaml", "--results", "out", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == (
        f"cachelab: error: --results out: {Path('out/cli-small')} is not a folder\n"
    )


def test_command_line_values_are_checked_like_the_yaml(tmp_path: Path) -> None:
    write(tmp_path, SMALL)
    for args, problem in (
        (["--seed", "-1"], "s.yaml: --seed: must be >= 0, got -1"),
        (["--seed", "2", "--seed", "2"], "s.yaml: --seed: seed 2 is given twice"),
        (["--strategy", "nope"], "s.yaml: --strategy: no strategy named 'nope'"),
    ):
        done = cachelab("run", "s.yaml", "--results", "out", *args, cwd=tmp_path)
        assert done.returncode == 2
        assert done.stderr.startswith(f"cachelab: error: {problem}")
        assert done.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_quiet_hides_the_table_not_the_written_line(tmp_path: Path) -> None:
    write(tmp_path, SMALL)
    done = cachelab("run", "s.yaml", "--results", "out", "--quiet", "--seed", "1", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout == ""
    assert done.stderr == "2 runs written under out/\n"


def test_over_the_limits_is_refused_by_validate_and_run_unless_i_know(tmp_path: Path) -> None:
    write(tmp_path, dict(SMALL, seeds=[1], workload={"instances": 1_000_000}))
    for command in (["validate", "s.yaml"], ["run", "s.yaml", "--results", "out"]):
        done = cachelab(*command, cwd=tmp_path)
        assert done.returncode == 2
        assert done.stderr.startswith("cachelab: error: s.yaml: limits: this needs about ")
        assert "workload.instances" in done.stderr and "--i-know" in done.stderr
    assert not (tmp_path / "out").exists()
    forced = cachelab("validate", "s.yaml", "--i-know", cwd=tmp_path)
    assert forced.returncode == 0 and "workload.instances" in forced.stdout


def test_command_line_mistakes_are_one_line_too(tmp_path: Path) -> None:
    write(tmp_path, SMALL)
    for args, problem in (
        (["run", "s.yaml", "--seed", "abc"], "argument --seed: invalid int value: 'abc'"),
        (["run", "s.yaml", "--backend", "mem"], "argument --backend: invalid choice: 'mem'"),
        (["frobnicate"], "argument command: invalid choice: 'frobnicate'"),
    ):
        done = cachelab(*args, cwd=tmp_path)
        assert done.returncode == 2
        assert done.stderr.startswith(f"cachelab: error: {problem}")
        assert done.stderr.count("\n") == 1 and done.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


def test_list_survives_odd_descriptions(tmp_path: Path) -> None:
    (tmp_path / "sc").mkdir()
    for name, description in (("a", "   "), ("b", "\x1b[31mred\nsecond line")):
        data = dict(SMALL, name=f"odd-{name}", description=description)
        (tmp_path / "sc" / f"{name}.yaml").write_text(yaml.safe_dump(data))
    done = cachelab("list", "--scenarios", "sc", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\\x1b[31mred" in done.stdout


def test_a_reader_that_goes_away_is_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "sc").mkdir()
    text = yaml.safe_dump(dict(SMALL, description="x" * 100))
    for i in range(1500):  # more than a pipe holds: the command is still writing
        (tmp_path / "sc" / f"s{i:04d}.yaml").write_text(text)
    reader = subprocess.Popen(
        [sys.executable, "-m", "lab", "list", "--scenarios", "sc"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert reader.stdout is not None and reader.stderr is not None
    assert reader.stdout.read(10) == b"Scenarios:"
    reader.stdout.close()  # as `| head -1` does
    err = reader.stderr.read().decode()
    assert reader.wait(timeout=300) == 141
    assert err == ""
