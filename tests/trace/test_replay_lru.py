"""Replaying a generated trace through the simulator's exact LRU gives, to the request,
the misses of an independent exact-LRU loop written in the test (tests/trace/refs.py).

One node, one closed-loop client (each request completes before the next starts, so
the cache sees the trace's order), cache-aside with a TTL longer than the run: a read
is a GET, and a miss fills the key, as the reference loop inserts it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lab.runner import run_cell
from lab.scenario import Cell, parse_scenario
from tests.trace.refs import lru_misses_by_count, write_csv, write_oracle, zipf_keys

N = 20_000
DISTINCT = 2_000


def replayed_misses(folder: Path, trace: dict[str, Any], capacity: int | str) -> int:
    scenario = parse_scenario(
        {
            "name": "lru",
            "requests": N,
            "workload": {
                "trace": {**trace, "speed": "order-only"},
                "arrivals": {"process": "closed", "clients": 1},
            },
            "topology": {"nodes": 1, "capacity": capacity, "eviction": "lru"},
            "strategies": {"aside": {"read": "cache-aside", "write": "invalidate", "ttl": "1h"}},
        },
        "test",
        folder,
    )
    s = run_cell(scenario, Cell("lru", "aside", "sim", 1)).summary
    assert s["requests"] == s["reads"] == N and s["errors"] == 0
    return int(s["reads"] - s["hits"])


@pytest.mark.parametrize("capacity", [50, 400, 1500])
def test_object_count_lru_matches_the_reference_loop(tmp_path: Path, capacity: int) -> None:
    ids = zipf_keys(np.random.default_rng(capacity), DISTINCT, 0.8, N)
    write_oracle(tmp_path / "t.bin", np.zeros(N, dtype=int), ids, [100] * N)
    expected = sum(lru_misses_by_count(ids.tolist(), capacity))
    assert 0.05 * N < expected < 0.95 * N  # neither all hits nor all misses
    assert replayed_misses(tmp_path, {"path": "t.bin"}, capacity) == expected


def test_text_keys_through_dense_mapping_match_too(tmp_path: Path) -> None:
    ids = zipf_keys(np.random.default_rng(9), DISTINCT, 1.0, N)
    write_csv(tmp_path / "t.csv", ["key"], [(f"object/{k:x}",) for k in ids])
    expected = sum(lru_misses_by_count(ids.tolist(), 300))
    assert replayed_misses(tmp_path, {"path": "t.csv"}, 300) == expected


def test_byte_budget_lru_matches_the_reference_loop(tmp_path: Path) -> None:
    """The same with the trace's object sizes as value sizes and a capacity in bytes. The
    budget counts what Redis 7.0 would hold for each entry (lab/sim/memory.py: the value
    plus the key, the dict entries and tables); the reference loop uses that accounting
    for its bytes, and its own LRU order, hits and evictions."""
    from collections import OrderedDict

    from lab.core import Versioned
    from lab.sim.memory import Accounting, RedisMemory

    rng = np.random.default_rng(7)
    ids = zipf_keys(rng, DISTINCT, 0.8, N)
    sizes_of = rng.integers(100, 20_000, DISTINCT)  # each object's own size
    write_oracle(tmp_path / "t.bin", np.zeros(N, dtype=int), ids, sizes_of[ids])
    dense = {k: i for i, k in enumerate(dict.fromkeys(ids.tolist()))}  # the replay's key ids
    for budget in (200_000, 2_000_000):
        memory = Accounting(RedisMemory(), budget)
        cache: OrderedDict[int, None] = OrderedDict()
        misses = 0
        for key in ids.tolist():
            lab_id = dense[key]
            if lab_id in cache:
                cache.move_to_end(lab_id)
                continue
            misses += 1
            cache[lab_id] = None
            memory.add(lab_id, Versioned(0, int(sizes_of[key])), ttl=True)
            while memory.used > budget:
                memory.remove(cache.popitem(last=False)[0])
        assert 0.05 * N < misses < 0.95 * N
        capacity = f"{budget}B"
        assert replayed_misses(tmp_path, {"path": "t.bin"}, capacity) == misses, budget
