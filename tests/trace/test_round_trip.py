"""`cachelab trace synth` then a replay of the trace reproduces the original run's
summary exactly: the same requests at the same float times, the same key ids, so
every figure of the summary (latencies, staleness, evictions, origin load) matches."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lab.cli import main
from lab.runner import run_cell
from lab.scenario import Cell, parse_scenario
from lab.trace.synth import synthesize
from tests.trace.test_replay import STRATEGIES as ALL
from tests.unit.test_golden_summaries import WALL_CLOCK

STRATEGIES = {name: ALL[name] for name in ("aside", "through", "behind", "refresh", "lease")}
BASE: dict[str, Any] = {
    "name": "rt",
    "seeds": [3],
    "keyspace": {"keys": 400, "value_size": "1KiB"},
    "topology": {"nodes": 3, "capacity": 60},
    "strategies": STRATEGIES,
}
POISSON = {"mix": {"write": 0.15}, "arrivals": {"rate": "3000/s"}, "instances": 2}
CLOSED = {"mix": {"write": 0.15}, "arrivals": {"process": "closed", "clients": 6, "think": "1ms"}}
CASES: dict[str, dict[str, Any]] = {
    "poisson-requests": {"requests": 6000, "warmup": "0.3s", "workload": POISSON},
    "poisson-duration": {"duration": "2s", "warmup": "0.5s", "workload": POISSON},
    "closed-requests": {"requests": 4000, "workload": CLOSED},
    "sizes-and-bytes": {  # per-key sizes written to the trace, read back as value sizes
        "requests": 6000,
        "workload": POISSON,
        "keyspace": {
            "keys": 400,
            "value_size": {"distribution": "lognormal", "median": "1KiB", "p99": "16KiB"},
        },
        "topology": {"nodes": 3, "capacity": "96KiB"},
    },
}
IGNORED = WALL_CLOCK | {"config_hash"}


def comparable(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k not in IGNORED}


def replay_of(original: dict[str, Any], trace: Path) -> dict[str, Any]:
    """The same scenario with the synthesized trace as its workload."""
    workload = original["workload"]
    closed = workload["arrivals"].get("process") == "closed"
    replay: dict[str, Any] = {"path": str(trace), "keys": "identity"}
    replay |= {"speed": "order-only"} if closed else {"speed": "1x", "start": 0}
    new = {"trace": replay, "instances": workload.get("instances", 1)}
    if closed:
        new["arrivals"] = workload["arrivals"]
    return {**original, "workload": new}


@pytest.mark.parametrize("case", sorted(CASES))
def test_synth_then_replay_gives_the_same_summary(tmp_path: Path, case: str) -> None:
    data = {**BASE, **CASES[case]}
    original = parse_scenario(data)
    trace = tmp_path / "s.csv.zst"
    synthesize(original, trace)
    replayed = parse_scenario(replay_of(data, trace))
    assert replayed.workload.trace is not None
    for strategy in STRATEGIES:
        first = run_cell(original, Cell("rt", strategy, "sim", 3))
        again = run_cell(replayed, Cell("rt", strategy, "sim", 3))
        a, b = first.summary, again.summary
        assert a["requests"] > 1000 and a["hits"] > 0
        assert a["evictions"] > 0  # the capacity binds (in bytes for sizes-and-bytes)
        assert comparable(b) == comparable(a), strategy
        assert again.timeseries.equals(first.timeseries), strategy  # interval by interval


def test_order_only_under_the_same_poisson_arrivals_is_exact_too(tmp_path: Path) -> None:
    """The arrivals are drawn from the seed as for the synthetic stream."""
    data = {**BASE, **CASES["poisson-requests"]}
    original = parse_scenario(data)
    synthesize(original, tmp_path / "s.csv")
    replay = replay_of(data, tmp_path / "s.csv")
    replay["workload"]["trace"] = {
        "path": str(tmp_path / "s.csv"),
        "keys": "identity",
        "speed": "order-only",
    }
    replay["workload"]["arrivals"] = POISSON["arrivals"]
    a = run_cell(original, Cell("rt", "aside", "sim", 3)).summary
    b = run_cell(parse_scenario(replay), Cell("rt", "aside", "sim", 3)).summary
    assert comparable(b) == comparable(a)


def test_the_command_line_round_trip(tmp_path: Path) -> None:
    """What a user does: synth, a scenario naming the trace, run both, same summary.json."""
    import yaml

    data = {**BASE, **CASES["poisson-requests"], "strategies": {"aside": STRATEGIES["aside"]}}
    (tmp_path / "orig.yaml").write_text(yaml.safe_dump(data))
    assert main(["trace", "synth", str(tmp_path / "orig.yaml"), "-o", str(tmp_path / "t.csv")]) == 0
    replay = replay_of(data, Path("t.csv"))  # relative to the scenario's folder
    (tmp_path / "replay.yaml").write_text(yaml.safe_dump(replay))
    for name in ("orig", "replay"):
        args = ["run", str(tmp_path / f"{name}.yaml"), "--results", str(tmp_path / name), "--quiet"]
        assert main([*args, "--no-progress"]) == 0
    a, b = (
        json.loads((tmp_path / name / "rt" / "aside.sim.s3" / "summary.json").read_text())
        for name in ("orig", "replay")
    )
    assert comparable(b) == comparable(a)
