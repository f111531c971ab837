"""Does every real node hold its capacity, interval by interval, with zero errors?

One cell is a fault-free, read-only zipfian run on real servers at one value
size, node count and app-instance count, sized so that every node is full
after the warm-up; after it, every gauge poll's key count of every node is
compared with the capacity. `make capacity-grid` runs `GRID` on every server
binary found; `tests/real/test_capacity.py` runs `QUICK`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from lab.redis.backend import RedisBackend
from lab.redis.binaries import ServerBinary
from lab.runner import run_cell
from lab.scenario import Cell, Scenario, parse_scenario

RATE = 1500.0
"""Requests per second: what one Python load generator keeps up with on a busy machine."""
MEASURED = 5.0
"""Seconds measured after the warm-up."""


@dataclass(frozen=True)
class HoldCell:
    value_size: str
    nodes: int
    instances: int
    capacity: int
    """Keys per node."""

    @property
    def label(self) -> str:
        return f"{self.value_size} x{self.nodes} nodes x{self.instances} inst cap {self.capacity}"


@dataclass(frozen=True)
class HoldResult:
    cell: HoldCell
    server: str
    worst: float
    """Largest |keys - capacity| / capacity of any node at any poll after the warm-up."""
    polls: int
    errors: int
    cache_errors: int
    hit_ratio: float | None
    lowest: int
    highest: int
    within_1pct: float = 1.0
    """Share of (node, poll) key counts within 1% of the capacity."""

    @property
    def held(self) -> bool:
        return self.worst <= 0.01 and self.errors == 0 and self.polls > 0

    def line(self) -> str:
        verdict = "ok" if self.held else "FAIL"
        return (
            f"{self.server:14} {self.cell.label:38} worst {self.worst * 100:5.2f}% "
            f"keys {self.lowest}-{self.highest} polls {self.polls:3d} "
            f"within 1% {self.within_1pct * 100:5.1f}% errors {self.errors} "
            f"cache_errors {self.cache_errors} hit {self.hit_ratio or 0:.4f} {verdict}"
        )


def warmup_for(cell: HoldCell) -> float:
    """Long enough for the slowest node to fill (keyspace 4x the total capacity, zipf 0.8:
    about 2.5 requests per key held, at RATE)."""
    return 3.0 + 2.5 * cell.nodes * cell.capacity / RATE


def scenario_for(cell: HoldCell) -> Scenario:
    warmup = warmup_for(cell)
    data: dict[str, Any] = {
        "name": "capacity-hold",
        "duration": f"{warmup + MEASURED:.1f}s",
        "warmup": f"{warmup:.1f}s",
        "keyspace": {"keys": 4 * cell.nodes * cell.capacity, "value_size": cell.value_size},
        "workload": {
            "mix": {"read": 1.0},
            "keys": {"distribution": "zipf", "s": 0.8},
            "arrivals": {"process": "poisson", "rate": RATE},
            "instances": cell.instances,
        },
        "topology": {"nodes": cell.nodes, "capacity": f"{cell.capacity} keys"},
        "strategies": {"cache-aside": {"read": "cache-aside", "write": "invalidate", "ttl": "5m"}},
    }
    return parse_scenario(data, "capacity-hold")


def run_hold(cell: HoldCell, binary: ServerBinary, seed: int = 1) -> HoldResult:
    """One cell on real servers of `binary`."""
    scenario = scenario_for(cell)
    backend = RedisBackend(binary=binary, node_history=True)
    result = run_cell(scenario, Cell(scenario.name, "cache-aside", "redis", seed), backend=backend)
    assert backend.gauges is not None and backend.gauges.history is not None
    after = [keys for t, keys in backend.gauges.history if t >= scenario.warmup]
    counts = [k for keys in after for k in keys]
    s = result.summary
    return HoldResult(
        cell,
        binary.label,
        max((abs(k - cell.capacity) / cell.capacity for k in counts), default=1.0),
        len(after),
        int(s["errors"]),
        int(s.get("cache_errors", 0)),
        s["hit_ratio"],
        min(counts, default=0),
        max(counts, default=0),
        sum(abs(k - cell.capacity) <= 0.01 * cell.capacity for k in counts) / max(len(counts), 1),
    )


def grid(
    sizes: list[str], nodes: list[int], instances: list[int], capacity: dict[str, int]
) -> list[HoldCell]:
    return [
        HoldCell(size, n, i, capacity[size])
        for size, n, i in itertools.product(sizes, nodes, instances)
    ]


SIZES = ["16B", "100B", "1KiB", "16KiB", "64KiB"]
CAPACITY = {"16B": 1000, "100B": 1000, "1KiB": 1000, "16KiB": 600, "64KiB": 600}
"""Keys per node: at 64 KiB a Redis 7.0 key takes 82 KB, and the server's transient
buffers (the query buffer of a connection that just stored a value, replies being
written) come and go a few values at a time: below ~500 keys that alone is 1%."""
GRID = grid(SIZES, [1, 3, 8], [1, 4, 16], CAPACITY)
QUICK = [HoldCell("100B", 3, 4, 667), HoldCell("1KiB", 1, 16, 1000)]
"""The test suite's cut (16 KiB and up: in the grid; their replies in flight make
transient evictions whose size depends on how bursty a busy machine makes the load)."""
