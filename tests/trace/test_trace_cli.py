"""`cachelab trace stats` and `cachelab trace synth` as a user runs them: subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from tests.trace.refs import write_csv, write_oracle

SCENARIO = {
    "name": "synth-small",
    "requests": 2000,
    "keyspace": {"keys": 200},
    "workload": {"mix": {"write": 0.1}, "arrivals": {"process": "poisson", "rate": "1000/s"}},
    "strategies": {"aside": {"read": "cache-aside", "write": "invalidate", "ttl": "1m"}},
}


def cachelab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lab", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_stats_prints_the_table_and_writes_files_and_figures(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 500, 20_000)
    write_oracle(tmp_path / "t.oracleGeneral.bin", np.arange(ids.size) // 50, ids, ids + 1)
    done = cachelab("trace", "stats", "t.oracleGeneral.bin", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "| requests | 20,000 |" in done.stdout
    assert "| unique keys | 500 |" in done.stdout
    assert "| first request | 2.50% | 100.00% |" in done.stdout
    out = tmp_path / "results" / "traces" / "t.oracleGeneral"
    assert sorted(p.name for p in out.iterdir()) == [
        "reuse.csv",
        "stats.json",
        "stats.md",
        "trace_stats.png",
        "trace_stats.svg",
    ]
    summary = json.loads((out / "stats.json").read_text())
    assert summary["requests"] == 20_000 and summary["unique_keys"] == 500
    assert summary["working_set_bytes"] == sum(range(1, 501))
    assert (out / "trace_stats.png").read_bytes()[:4] == b"\x89PNG"


def test_stats_of_a_csv_with_options(tmp_path: Path) -> None:
    rows = [(i, f"k{i % 10}", "2a" if i % 4 == 0 else "28") for i in range(400)]
    write_csv(tmp_path / "io.csv", ["ts", "lbn", "cmd"], rows)
    done = cachelab(
        "trace", "stats", "io.csv", "--columns", "time=ts,key=lbn,op=cmd",
        "--ops", "2a=write,28=read", "--time-unit", "ms", "-o", "out", "--no-figure",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "| reads / writes | 75.00% / 25.00% |" in done.stdout
    assert "| time span | 0.399 s" in done.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "reuse.csv",
        "stats.json",
        "stats.md",
    ]


def test_bad_traces_are_one_line_exit_2_and_nothing_written(tmp_path: Path) -> None:
    write_csv(tmp_path / "t.csv", ["key", "op"], [("a", "get"), ("b", "fetch")])
    (tmp_path / "cut.bin").write_bytes(b"\x01" * 30)
    cases = [
        (("t.csv",), "t.csv: line 3: unknown operation 'fetch'"),
        (("t.csv", "--columns", "key=name"), "no column named 'name' (for key)"),
        (("t.csv", "--columns", "key"), "--columns: expected NAME=VALUE pairs"),
        (("t.csv", "--columns", "kee=name"), "--columns: columns.kee: Extra inputs"),
        (("t.csv", "--sample-rate", "2"), "--sample-rate: must be in (0, 1], got 2.0"),
        (("cut.bin",), "cut.bin: record 2: truncated"),
        (("none.csv",), "none.csv: no such trace file"),
    ]
    for args, message in cases:
        done = cachelab("trace", "stats", *args, "-o", "out", cwd=tmp_path)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith("cachelab: error: ") and message in done.stderr, done.stderr
        assert done.stderr.count("\n") == 1 and done.stdout == ""
        assert not (tmp_path / "out").exists()


def test_synth_writes_a_trace_that_stats_reads(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(SCENARIO))
    done = cachelab("trace", "synth", "s.yaml", "-o", "s.csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "s.csv: 2000 requests" in done.stderr and "note:" not in done.stderr
    lossy = cachelab("trace", "synth", "s.yaml", "-o", "s.bin", "--seed", "3", cwd=tmp_path)
    assert lossy.returncode == 0, lossy.stderr
    assert "note: oracleGeneral is lossy" in lossy.stderr
    assert (tmp_path / "s.bin").stat().st_size == 2000 * 24
    stats = cachelab("trace", "stats", "s.csv", "--no-figure", cwd=tmp_path)
    assert stats.returncode == 0, stats.stderr
    assert "| requests | 2,000 |" in stats.stdout


def test_synth_bad_input_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(SCENARIO))
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**SCENARIO, "requests": -1}))
    cases = [
        (("bad.yaml", "-o", "x.csv"), "bad.yaml: requests:"),
        (("s.yaml", "-o", "x.txt"), "synth writes csv (lossless) or oracleGeneral"),
        (("s.yaml", "-o", "x.dat"), "cannot tell the trace format"),
        (("s.yaml", "-o", "x.csv", "--requests", "0"), "--requests: must be >= 1"),
    ]
    for args, message in cases:
        done = cachelab("trace", "synth", *args, cwd=tmp_path)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "s.yaml"]
