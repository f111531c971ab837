"""Worker processes (`--jobs`, Dask) receive scenarios pickled: every shipped one must
round-trip, including the models built from the parts' registry (StrategySpec and its
stampede block)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from lab.scenario import load_scenario

SCENARIOS = sorted((Path(__file__).parents[2] / "scenarios").glob("*.yaml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenario_pickles(path: Path) -> None:
    scenario = load_scenario(path)
    again = pickle.loads(pickle.dumps(scenario))
    assert again.model_dump() == scenario.model_dump()
