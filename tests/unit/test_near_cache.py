"""Near caches: TTL-only goes stale, pub/sub invalidation fixes most of it, loss undoes some."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lab.runner import run_cell
from lab.scenario import Cell, ScenarioError, load_scenario, parse_scenario

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "near-cache-invalidation.yaml"


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, Any]]:
    sc = load_scenario(SCENARIO).scaled(0.4)
    return {name: run_cell(sc, Cell(sc.name, name, "sim", 1)).summary for name in sc.strategies}


def test_ttl_only_near_caches_serve_other_instances_writes_stale(
    results: dict[str, dict[str, Any]],
) -> None:
    assert results["near-ttl"]["stale_read_ratio"] > 5 * results["near-bus"]["stale_read_ratio"]
    # a local copy lives at most its local TTL (5 s) after the write it missed
    assert results["near-ttl"]["staleness_age_max"] < 5.0 + 1.0


def test_lost_invalidations_leave_stale_copies(results: dict[str, dict[str, Any]]) -> None:
    bus, lossy, ttl = (
        results[n]["stale_read_ratio"] for n in ("near-bus", "near-bus-lossy", "near-ttl")
    )
    assert bus < lossy < ttl


def test_near_hits_skip_the_network(results: dict[str, dict[str, Any]]) -> None:
    near, shared = results["near-bus"], results["shared-only"]
    assert near["near_hits"] > 0.3 * near["reads"]
    assert near["read_latency_p50"] < shared["read_latency_p50"] / 10


def test_loss_needs_the_bus() -> None:
    with pytest.raises(ScenarioError, match="loss applies to invalidate: bus"):
        parse_scenario(
            {"name": "x", "requests": 5, "strategies": {"s": {"near": {"loss": 0.1}}}}, "x"
        )
