"""Hostile `sweep:` sections: each refused in one line naming the list and the value at
fault (nothing written), or run within its estimate, like the rest of the corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.harness import attempt
from tests.fuzz.make_corpus import SMALL, TIMED, field_of

GRID = "sweep:\n  grid:\n"

CASES: dict[str, tuple[str, str]] = {
    "empty": (SMALL + "sweep: {}\n", "sweep"),
    "null": (SMALL + "sweep:\n", "run"),
    "grid-a-list": (SMALL + "sweep: {grid: [1, 2]}\n", "sweep.grid"),
    "misspelt": (SMALL + "sweep: {gird: {topology.capacity: [1]}}\n", "sweep.gird"),
    "empty-list": (
        SMALL + "sweep: {grid: {topology.capacity: []}}\n",
        "sweep.grid.topology.capacity",
    ),
    "bad-value": (
        SMALL + GRID + "    topology.capacity: [10, 20, 0]\n",
        'sweep.grid["topology.capacity"][2]',
    ),
    "bool-value": (
        SMALL + GRID + "    topology.capacity: [10, true]\n",
        'sweep.grid["topology.capacity"][1]',
    ),
    "unknown-path": (
        SMALL + GRID + "    topology.capcity: [10]\n",
        'sweep.grid["topology.capcity"][0]',
    ),
    "bad-ttl": (
        SMALL + GRID + "    strategies.*.ttl: [1s, soon]\n",
        'sweep.grid["strategies.*.ttl"][1]',
    ),
    "seeds": (SMALL + GRID + "    seeds: [1, 2]\n", 'sweep.grid["seeds"]'),
    "name": (SMALL + GRID + "    name: [a, b]\n", 'sweep.grid["name"]'),
    "empty-component": (
        SMALL + GRID + "    topology..capacity: [1]\n",
        'sweep.grid["topology..capacity"]',
    ),
    "long-path": (
        SMALL + GRID + "    " + "a." * 150 + "b: [1]\n",
        'sweep.grid["a.a.a',
    ),
    "index-out-of-range": (
        TIMED
        + "faults: [{kind: bus_loss, at: 1s, duration: 1s}]\n"
        + GRID
        + "    faults.3.at: [1s]\n",
        'sweep.grid["faults.3.at"][0]',
    ),
    "into-a-number": (SMALL + GRID + "    requests.x: [1]\n", 'sweep.grid["requests.x"][0]'),
    "duplicate-values": (
        SMALL + GRID + "    topology.capacity: [10, 10]\n",
        'sweep.grid["topology.capacity"][1]',
    ),
    "zip-lengths": (
        SMALL + "sweep:\n  zip:\n    topology.capacity: [10, 20]\n    keyspace.keys: [100]\n",
        'sweep.zip["keyspace.keys"]',
    ),
    "both": (
        SMALL + "sweep:\n  grid: {topology.capacity: [1]}\n  zip: {topology.capacity: [2]}\n",
        'sweep.zip["topology.capacity"]',
    ),
    "too-many-cells": (
        SMALL
        + GRID
        + "".join(f"    strategies.*.client.retries{'.x' * 0}: [0]\n" for _ in range(1))
        + "".join(
            f"    keyspace.keys: [{', '.join(str(100 + i) for i in range(50))}]\n" for _ in range(1)
        )
        + f"    topology.capacity: [{', '.join(str(10 + i) for i in range(50))}]\n",
        "sweep",
    ),
    "long-name": (SMALL + GRID + "    workload.keys.s: ['0." + "1" * 120 + "']\n", "sweep"),
    "control-char": (
        SMALL + GRID + '    workload.keys.distribution: ["zipf\\n"]\n',
        'sweep.grid["workload.keys.distribution"][0]',
    ),
    "cross-field": (
        TIMED + "warmup: 1s\n" + GRID + "    duration: [2s, 500ms]\n",
        'sweep.grid["duration"][1]',
    ),
    "over-limits": (
        SMALL.replace("requests: 400", "requests: 400000")
        + GRID
        + "    topology.capacity: [10, 20, 30]\n",
        "limits",
    ),
    "ok-grid-and-zip": (
        SMALL
        + "seeds: [1, 2]\n"
        + GRID
        + "    strategies.*.ttl: [1s, 10s]\n"
        + "  zip:\n    keyspace.keys: [100, 200]\n    workload.mix.write: [0.1, 0.3]\n",
        "run",
    ),
    "ok-slash-value": (SMALL + GRID + "    workload.arrivals.rate: [100/s, 2/ms]\n", "run"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_sweep_case_is_refused_in_one_line_or_runs_within_its_estimate(
    name: str, tmp_path: Path
) -> None:
    text, expected = CASES[name]
    path = tmp_path / f"sweep-{name}.yaml"
    path.write_text(text)
    outcome = attempt(path, tmp_path)
    assert outcome.problems() == []
    if expected == "run":
        assert outcome.status == 0
    else:
        assert outcome.status == 2
        named = field_of(outcome.stderr.split(str(path), 1)[1])
        assert named.startswith(expected), outcome.stderr
