"""Versioned keys: a bump orphans a namespace; reads never see data older than a bump."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lab.runner import run_cell
from lab.scenario import Cell, ScenarioError, load_scenario, parse_scenario

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "versioned-keys.yaml"


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, Any]]:
    sc = load_scenario(SCENARIO).scaled(0.4)
    return {name: run_cell(sc, Cell(sc.name, name, "sim", 1)).summary for name in sc.strategies}


def test_a_read_never_returns_data_older_than_the_last_bump(
    results: dict[str, dict[str, Any]],
) -> None:
    for name in ("versioned-1", "versioned-100"):
        assert results[name]["stale_reads"] == 0
    # while delete-on-write suffers the stale-set race on the same requests
    assert results["delete-on-write"]["stale_reads"] > 0


def test_coarse_namespaces_throw_away_more(results: dict[str, dict[str, Any]]) -> None:
    fine, coarse = results["versioned-1"], results["versioned-100"]
    assert coarse["hit_ratio"] < fine["hit_ratio"] - 0.1
    assert coarse["origin_reads"] > fine["origin_reads"]
    assert coarse["orphaned_keys"] > fine["orphaned_keys"] > 0
    assert coarse["orphaned_bytes"] == coarse["orphaned_keys"] * 1024


def test_the_version_read_costs_a_round_trip(results: dict[str, dict[str, Any]]) -> None:
    assert (
        results["versioned-1"]["read_latency_p50"] > results["delete-on-write"]["read_latency_p50"]
    )


def test_versioned_read_needs_the_bump_write() -> None:
    with pytest.raises(ScenarioError, match="read: versioned with write: bump"):
        parse_scenario(
            {"name": "x", "requests": 5, "strategies": {"s": {"read": "versioned"}}}, "x"
        )
