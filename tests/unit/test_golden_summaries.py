"""Byte-identical simulated results on shipped scenarios: a refactor must not change them.

For every cell of a few shipped scenarios (each exercising other parts: races,
stampede guards, write-behind with a crash, a failover with replicas,
versioned keys, a partition with near caches) the sha256 of the canonical
summary (sorted JSON, wall-clock and version fields left out) and of the
timeseries CSV must match `tests/golden/summaries.json`.

When a change of the model is intended, regenerate and explain every changed
number in the commit:

    .venv/bin/python tests/unit/test_golden_summaries.py --write
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from lab.runner import RunResult, run_cell
from lab.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "summaries.json"
SCENARIOS = [
    "stale-set-race",
    "slow-origin-stampede",
    "write-behind-crash",
    "failover-replica-lag",
    "versioned-keys",
    "partition-near-cache",
]
WALL_CLOCK = {
    "wall_time",
    "throughput_wall",
    "versions",
    "lab_version",
    "driver_lag_p99",
    "driver_lag_max",
}
"""Fields that depend on the machine or the installed versions, not on the model."""


def fingerprint(result: RunResult) -> dict[str, str]:
    """sha256 of the canonical summary and of the timeseries."""
    summary = {k: v for k, v in result.summary.items() if k not in WALL_CLOCK}
    canonical = json.dumps(summary, sort_keys=True).encode()
    series = result.timeseries.to_csv(index=False).encode()
    return {
        "summary": hashlib.sha256(canonical).hexdigest(),
        "timeseries": hashlib.sha256(series).hexdigest(),
    }


def cells() -> list[tuple[str, Any, Any]]:
    out = []
    for name in SCENARIOS:
        scenario = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
        out.extend((f"{name}/{cell.run_id}", scenario, cell) for cell in scenario.cells(["sim"]))
    return out


CELLS = cells()


@pytest.fixture(scope="module")
def golden() -> dict[str, dict[str, str]]:
    stored: dict[str, dict[str, str]] = json.loads(GOLDEN.read_text())
    return stored


def test_the_golden_file_covers_every_cell(golden: dict[str, dict[str, str]]) -> None:
    assert sorted(golden) == sorted(run_id for run_id, _, _ in CELLS)


@pytest.mark.slow
@pytest.mark.parametrize(("run_id", "scenario", "cell"), CELLS, ids=[c[0] for c in CELLS])
def test_simulated_results_are_byte_identical(
    golden: dict[str, dict[str, str]], run_id: str, scenario: Any, cell: Any
) -> None:
    assert fingerprint(run_cell(scenario, cell)) == golden[run_id], (
        f"{run_id}: the simulated results changed; if the model changed on purpose, "
        "regenerate (see this module's docstring) and explain every changed number"
    )


def write() -> None:
    golden = {run_id: fingerprint(run_cell(scenario, cell)) for run_id, scenario, cell in CELLS}
    GOLDEN.write_text(json.dumps(golden, indent=2, sort_keys=True) + "\n")
    print(f"wrote {len(golden)} fingerprints to {GOLDEN}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(__doc__)
    write()
