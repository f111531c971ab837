"""Shared helpers: build small simulated harnesses with exact, constant latencies."""

from __future__ import annotations

from typing import Any

import pytest

from lab.scenario import Scenario, parse_scenario


def make_scenario(**overrides: Any) -> Scenario:
    """A small valid scenario; keyword arguments replace top-level fields."""
    data: dict[str, Any] = {
        "name": "t",
        "requests": 2000,
        "keyspace": {"keys": 100},
        "workload": {"arrivals": {"process": "poisson", "rate": 1000}},
        "strategies": {"cache-aside": {"read": "cache-aside", "write": "invalidate", "ttl": 60}},
    }
    data.update(overrides)
    return parse_scenario(data, "test")


@pytest.fixture
def scenario_factory() -> Any:
    return make_scenario
