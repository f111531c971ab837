"""A small set of runs, made once per session through the public API."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from lab.results import write_run
from lab.runner import run_cell
from lab.scenario import parse_scenario

SMALL: dict[str, Any] = {
    "name": "report-small",
    "seeds": [1, 2],
    "duration": "3s",
    "warmup": "1s",
    "keyspace": {"keys": 500},
    "workload": {"mix": {"read": 0.8}, "arrivals": {"process": "poisson", "rate": "1000/s"}},
    "topology": {"nodes": 2, "capacity": 100},
    "strategies": {
        "aside": {"read": "cache-aside", "write": "invalidate", "ttl": "1m"},
        "ttl": {"read": "cache-aside", "write": "around", "ttl": "1s"},
        "update": {"read": "cache-aside", "write": "update", "ttl": "1m"},
    },
}


@pytest.fixture(scope="session")
def small_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """results/report-small/<strategy>.sim.s<seed>/ for 3 strategies x 2 seeds."""
    root = tmp_path_factory.mktemp("results")
    scenario = parse_scenario(SMALL, "test")
    for cell in scenario.cells():
        write_run(root, scenario, run_cell(scenario, cell))
    return root


@pytest.fixture(scope="session")
def two_backend_results(small_results: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same runs plus copies labelled `redis`, to check side-by-side panels
    without real servers (the numbers are the sim's, only the label differs)."""
    root = tmp_path_factory.mktemp("two-backends")
    shutil.copytree(small_results, root, dirs_exist_ok=True)
    for run in sorted((root / "report-small").glob("*.sim.s*")):
        copy = run.with_name(run.name.replace(".sim.", ".redis."))
        shutil.copytree(run, copy)
        summary = json.loads((copy / "summary.json").read_text())
        summary["backend"] = "redis"
        (copy / "summary.json").write_text(json.dumps(summary))
    return root
