"""The memcached backend: every strategy memcached can support runs on it unchanged,
the others are refused or skipped with the reason, and without a binary a cell is
skipped, never failed."""

from __future__ import annotations

from typing import Any

import pytest

from lab.backend import CellSkipped
from lab.backends import create
from lab.processes.binaries import Binary
from lab.runner import run_cell
from lab.scenario import Cell
from tests.helpers import FAST_ORIGIN, make_scenario

SUPPORTED: dict[str, dict[str, Any]] = {
    "aside": {"read": "cache-aside", "write": "invalidate", "ttl": 60},
    "aside-add": {"read": "cache-aside", "write": "update", "ttl": 60, "fill": "add"},
    "lock": {
        "read": "cache-aside",
        "write": "invalidate",
        "ttl": 1,
        "stampede": {"lock": {"release": "token"}},
    },
    "lease": {"read": "cache-aside", "write": "invalidate", "ttl": 1, "stampede": {"lease": {}}},
    "lease-stale": {
        "read": "cache-aside",
        "write": "invalidate",
        "ttl": 1,
        "stampede": {"lease": {"stale": True}},
    },
    "xfetch": {"read": "cache-aside", "write": "invalidate", "ttl": 2, "stampede": {"xfetch": {}}},
    "coalesce": {"read": "cache-aside", "write": "invalidate", "stampede": {"coalesce": {}}},
    "read-through": {"read": "read-through", "write": "through", "ttl": 60},
    "refresh-ahead": {"read": "refresh-ahead", "write": "invalidate", "ttl": 2},
    "versioned": {"read": "versioned", "write": "bump", "ttl": 60},
    "behind": {"read": "cache-aside", "write": "behind"},
    "near-ttl": {"read": "cache-aside", "write": "invalidate", "ttl": 60, "near": {}},
}


def _scenario(strategies: dict[str, dict[str, Any]], **extra: Any) -> Any:
    return make_scenario(
        requests=1500,
        origin=FAST_ORIGIN,
        strategies=strategies,
        backends=["memcached"],
        workload={"arrivals": {"process": "poisson", "rate": 1500}, "mix": {"read": 0.9}},
        **extra,
    )


def test_every_supported_strategy_runs_on_memcached(binary: Binary) -> None:
    scenario = _scenario(SUPPORTED, topology={"nodes": 2, "memcached": {"memory": "8MiB"}})
    for name in SUPPORTED:
        result = run_cell(scenario, Cell("t", name, "memcached", 1))
        summary = result.summary
        assert summary["errors"] == 0, (name, result.notes)
        assert summary["reads"] > 1000 and summary["hits"] > 0, name
        assert summary["lost_writes"] == 0, name
        assert summary["cache_keys"] > 0 and summary["cache_memory"] > 0, name
    assert summary["versions"]["server"] == binary.label


def test_a_near_cache_bus_is_skipped_for_want_of_pubsub(binary: Binary) -> None:
    bus = {"near": {"read": "cache-aside", "write": "invalidate", "near": {"invalidate": "bus"}}}
    with pytest.raises(CellSkipped, match="needs pubsub, which the memcached backend"):
        run_cell(_scenario(bus), Cell("t", "near", "memcached", 1))


@pytest.mark.parametrize(
    ("topology", "faults", "reason"),
    [
        ({"replicas": 1, "sharding": "slots"}, [], "no server-side replication"),
        ({"sharding": "slots"}, [], "ketama or modulo"),
        ({"capacity": 100}, [], "sized in memory, not keys"),
        ({"eviction": "fifo"}, [], "segmented LRU per slab class"),
        ({}, [{"kind": "bus_loss", "at": 0.1, "duration": 0.1}], "bus_loss cannot be injected"),
        ({}, [{"kind": "latency", "at": 0.1, "duration": 0.1}], "latency"),
    ],
)
def test_what_memcached_lacks_is_refused_before_anything_starts(
    topology: dict[str, Any], faults: list[dict[str, Any]], reason: str
) -> None:
    aside = {"aside": SUPPORTED["aside"]}
    scenario = _scenario(aside, topology=topology, faults=faults)
    refusal = create("memcached").refusal(scenario, Cell("t", "aside", "memcached", 1))
    assert refusal is not None and reason in refusal


def test_without_a_binary_a_cell_is_skipped_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CACHELAB_MEMCACHED_BIN", "/nonexistent/memcached")
    scenario = _scenario({"aside": SUPPORTED["aside"]})
    with pytest.raises(CellSkipped, match="apt-get install memcached"):
        run_cell(scenario, Cell("t", "aside", "memcached", 1))


def test_a_node_crash_empties_the_node_and_it_comes_back(binary: Binary) -> None:
    crash = [{"kind": "node_crash", "at": 0.4, "duration": 0.3}]
    aside = {"aside": {**SUPPORTED["aside"], "client": {"timeout": 0.2}}}
    scenario = _scenario(aside, faults=crash)
    result = run_cell(scenario, Cell("t", "aside", "memcached", 1))
    assert any("crash node 0" in note for note in result.notes)
    assert any("restart node 0" in note for note in result.notes)
    assert result.summary["hits"] > 0


def test_a_near_cache_bus_runs_on_a_redis_bus_when_the_scenario_says_so(binary: Binary) -> None:
    bus = {"near": {"read": "cache-aside", "write": "invalidate", "near": {"invalidate": "bus"}}}
    scenario = _scenario(bus, topology={"memcached": {"memory": "8MiB", "bus": "redis"}})
    try:
        result = run_cell(scenario, Cell("t", "near", "memcached", 1))
    except CellSkipped as skipped:  # no Redis server here: the reason says so
        assert "memcached.bus: redis needs a Redis server" in str(skipped)
        return
    summary = result.summary
    assert summary["errors"] == 0 and summary["near_hits"] > 0
    assert create("memcached").capabilities == type(create("memcached")).capabilities
