"""The sim-vs-real grid: the same cell on the simulator and on real servers.

A cell is a cache-aside run (invalidate on write, TTL 5 min) of a zipfian
(s=0.99) Poisson workload over 10,000 keys at 1,500 requests/s, with one
value size, node count, app-instance count, read share and capacity. Each is
run on the simulator and on every real server binary asked for, with the same
seed (so the same request stream); a `Row` keeps what the report compares:
hit ratio, stale-read ratio, keys held at the end, errors.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lab.redis.backend import RedisBackend
from lab.redis.binaries import ServerBinary
from lab.runner import CellSkipped, run_cell
from lab.scenario import Cell, Scenario, parse_scenario

KEYS = 10_000
KEYS_PER_NODE = 1000
VALUE_SIZES: dict[str, Any] = {
    "100B": "100B",
    "1KiB": "1KiB",
    "16KiB": "16KiB",
    "mix": {"distribution": "lognormal", "median": "1KiB", "p99": "64KiB"},
    "64KiB": "64KiB",
}
"""Value sizes a cell may have: the grid's axis (three sizes and a lognormal mix, median
1 KiB, p99 64 KiB) and 64 KiB, which tests run at a lower rate (`run_pair`'s `rate`)."""
BYTES: dict[str, str] = {
    "100B": "224KiB",
    "1KiB": "1400KiB",
    "16KiB": "20MiB",
    "mix": "6MiB",
    "64KiB": "24MiB",
}
"""A capacity in bytes per node for each value size: about 1,000 keys' worth (64 KiB:
about 300)."""
RATE = 1500.0
DURATION = 12.0
WARMUP = 4.0
STRATEGY = "cache-aside"


@dataclass(frozen=True)
class FidelityCell:
    """One point of the grid."""

    value_size: str
    nodes: int
    instances: int
    read: float
    """Share of reads (1.0: read-only; 0.9: 10% writes)."""
    capacity: str = "keys"
    """`keys` (1,000 keys per node) or `bytes` (`BYTES[value_size]` of data per node)."""
    eviction: str = "allkeys-lru"

    @property
    def name(self) -> str:
        mix = "ro" if self.read >= 1.0 else f"w{round((1 - self.read) * 100)}"
        cap = self.capacity_text.replace(" ", "")
        return f"{self.value_size}-n{self.nodes}-i{self.instances}-{mix}-{cap}-{self.eviction}"

    @property
    def capacity_text(self) -> str:
        return f"{KEYS_PER_NODE} keys" if self.capacity == "keys" else BYTES[self.value_size]


@dataclass(frozen=True)
class Row:
    """One cell on the simulator and on one real server."""

    cell: FidelityCell
    server: str
    sim: dict[str, Any]
    real: dict[str, Any]

    def record(self) -> dict[str, Any]:
        """The flat row of the table (ratios as fractions, keys summed over nodes)."""
        c, sim, real = self.cell, self.sim, self.real
        return {
            "cell": c.name,
            "server": self.server,
            "value_size": c.value_size,
            "nodes": c.nodes,
            "instances": c.instances,
            "writes": round(1 - c.read, 3),
            "capacity": c.capacity_text,
            "eviction": c.eviction,
            "hit_sim": sim["hit_ratio"],
            "hit_real": real["hit_ratio"],
            "hit_diff_points": _points(real["hit_ratio"], sim["hit_ratio"]),
            "stale_sim": sim["stale_read_ratio"],
            "stale_real": real["stale_read_ratio"],
            "stale_diff_points": _points(real["stale_read_ratio"], sim["stale_read_ratio"]),
            "keys_sim": sim["cache_keys"],
            "keys_real": real["cache_keys"],
            "errors_sim": sim["errors"],
            "errors_real": real["errors"],
            "cache_errors_real": real.get("cache_errors", 0),
            "driver_lag_p99_real": real.get("driver_lag_p99"),
            "read_p50_sim": sim.get("read_latency_p50"),
            "read_p50_real": real.get("read_latency_p50"),
        }


def _points(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else (a - b) * 100


def scenario_for(cell: FidelityCell, *, duration: float = DURATION, rate: float = RATE) -> Scenario:
    """The cell as a scenario (the same on both backends)."""
    data: dict[str, Any] = {
        "name": "fidelity",
        "duration": f"{duration}s",
        "warmup": f"{min(WARMUP, duration / 3):.2f}s",
        "keyspace": {"keys": KEYS, "value_size": VALUE_SIZES[cell.value_size]},
        "workload": {
            "mix": {"read": cell.read, "write": round(1 - cell.read, 6)},
            "keys": {"distribution": "zipf", "s": 0.99},
            "arrivals": {"process": "poisson", "rate": rate},
            "instances": cell.instances,
        },
        "topology": {
            "nodes": cell.nodes,
            "capacity": cell.capacity_text,
            "eviction": cell.eviction,
        },
        "origin": {"concurrency": 32},
        "strategies": {STRATEGY: {"read": "cache-aside", "write": "invalidate", "ttl": "5m"}},
    }
    return parse_scenario(data, "fidelity")


def run_pair(
    cell: FidelityCell,
    binary: ServerBinary,
    *,
    seed: int = 1,
    duration: float = DURATION,
    rate: float = RATE,
) -> Row | str:
    """The cell on the simulator and on `binary`'s servers; a string says why the real
    run was skipped."""
    scenario = scenario_for(cell, duration=duration, rate=rate)
    model = "valkey9" if binary.flavor == "valkey" else None  # count bytes as `binary` does
    sim_scenario = scenario.model_copy(
        update={"topology": scenario.topology.model_copy(update={"memory_model": model})}
    )
    sim = run_cell(sim_scenario, Cell(scenario.name, STRATEGY, "sim", seed)).summary
    try:
        real = run_cell(
            scenario,
            Cell(scenario.name, STRATEGY, "redis", seed),
            backend=RedisBackend(binary=binary),
        ).summary
    except CellSkipped as exc:
        return f"{cell.name} on {binary.label}: skipped: {exc}"
    return Row(cell, binary.label, sim, real)


AXES: dict[str, Sequence[Any]] = {
    "value_size": ["100B", "1KiB", "16KiB", "mix"],
    "nodes": [1, 3],
    "instances": [1, 4],
    "read": [1.0, 0.9],
    "capacity": ["keys", "bytes"],
    "eviction": ["allkeys-lru", "allkeys-lfu"],
}
"""The grid of issue 10 (128 cells per server binary)."""


def full_grid(axes: dict[str, Sequence[Any]] = AXES) -> list[FidelityCell]:
    names = list(axes)
    return [FidelityCell(**dict(zip(names, values, strict=True))) for values in _product(axes)]


def _product(axes: dict[str, Sequence[Any]]) -> list[tuple[Any, ...]]:
    return list(itertools.product(*axes.values()))


def sample_grid(count: int, seed: int = 10) -> list[FidelityCell]:
    """`count` cells of the full grid in a shuffled order (fixed by `seed`): a run cut
    short still covers every axis."""
    cells = full_grid()
    random.Random(seed).shuffle(cells)
    return cells[: max(0, count)]


QUICK = [
    FidelityCell("100B", 1, 1, 1.0),
    FidelityCell("1KiB", 3, 4, 0.9),
    FidelityCell("mix", 1, 1, 1.0, "bytes", "allkeys-lfu"),
]
"""The cut the test suite runs."""
