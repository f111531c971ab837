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

import numpy as np

from lab.fidelity.matched import (
    LaggedSimBackend,
    Measured,
    TimedRedisBackend,
    describe,
    matched_scenario,
)
from lab.fidelity.stalls import StalledSimBackend
from lab.redis.backend import RedisBackend
from lab.redis.binaries import ServerBinary
from lab.runner import CellSkipped, run_cell
from lab.scenario import Cell, Scenario, parse_scenario
from lab.sim.backend import SimBackend

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
    twin: dict[str, Any] | None = None
    """The latency-matched simulator run (`lab.fidelity.matched`), if asked for."""
    twin_latencies: dict[str, float | None] | None = None
    """The latencies the twin ran with (seconds: rtt, origin read and write)."""
    seeds: int = 1
    """Runs pooled into each of sim, real (and twin): counts summed over seeds."""
    runs: tuple[Row, ...] = ()
    """The rows of each seed, when pooled."""
    sim_draws: int = 1
    """Sets of the simulator's own random draws its ratios are pooled over (`simulate`)."""

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
        } | self._extra()

    def _extra(self) -> dict[str, Any]:
        """Columns only a run with `seeds` > 1 or a twin has (a default run's table and
        CSV stay as they were)."""
        out: dict[str, Any] = {}
        if self.seeds > 1:
            out["seeds"] = self.seeds
        if self.sim_draws > 1:
            out["sim_draws"] = self.sim_draws
            out["stale_sim_draw_sd"] = draw_sd(self.sim)
        twin, real, sim = self.twin, self.real, self.sim
        if twin is None:
            return out
        out |= {
            "hit_twin": twin["hit_ratio"],
            "hit_twin_diff_points": _points(real["hit_ratio"], twin["hit_ratio"]),
            "stale_twin": twin["stale_read_ratio"],
            "stale_twin_diff_points": _points(real["stale_read_ratio"], twin["stale_read_ratio"]),
            "read_p50_twin": twin.get("read_latency_p50"),
            "read_p99_sim": sim.get("read_latency_p99"),
            "read_p99_real": real.get("read_latency_p99"),
            "read_p99_twin": twin.get("read_latency_p99"),
            "cache_op_p50_real": real.get("cache_op_p50"),
            "cache_op_p99_real": real.get("cache_op_p99"),
            "cache_op_p50_twin": twin.get("cache_op_p50"),
            "cache_op_p99_twin": twin.get("cache_op_p99"),
            "origin_read_p50_real": real.get("origin_read_p50"),
            "origin_read_p99_real": real.get("origin_read_p99"),
            "origin_write_p50_real": real.get("origin_write_p50"),
            "origin_write_p99_real": real.get("origin_write_p99"),
            "stale_reads_sim": sim.get("stale_reads"),
            "stale_reads_real": real.get("stale_reads"),
            "stale_reads_twin": twin.get("stale_reads"),
            "reads_real": real.get("reads"),
        }
        return out | {f"twin_{k}": v for k, v in (self.twin_latencies or {}).items()}


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
    matched: bool = False,
    twin_model: str = "lag",
    sim_draws: int = 1,
) -> Row | str:
    """The cell on the simulator and on `binary`'s servers; a string says why the real
    run was skipped. `matched`: also the latency-matched simulator twin
    (`lab.fidelity.matched`), the real run timing its origin calls for it."""
    scenario = scenario_for(cell, duration=duration, rate=rate)
    sim_scenario = sim_scenario_for(scenario, binary)
    sim = simulate(sim_scenario, seed, sim_draws)
    backend = TimedRedisBackend(binary=binary) if matched else RedisBackend(binary=binary)
    try:
        real = run_cell(
            scenario,
            Cell(scenario.name, STRATEGY, "redis", seed),
            backend=backend,
        ).summary
    except CellSkipped as exc:
        return f"{cell.name} on {binary.label}: skipped: {exc}"
    if not matched:
        return Row(cell, binary.label, sim, real, sim_draws=sim_draws)
    twin = run_twin(sim_scenario, real, seed, model=twin_model)
    return Row(cell, binary.label, sim, real, twin, twin.pop("twin_latencies"), sim_draws=sim_draws)


def simulate(scenario: Scenario, seed: int, draws: int = 1) -> dict[str, Any]:
    """The simulator's summary of `scenario` on `seed`, pooled over `draws` sets of its
    own random draws (`SimBackend(draw=k)`, k = 0..draws-1): the request stream and the
    origin's latencies stay the seed's, as the real run draws them, and the rest (cache
    network and service times, eviction sampling) is averaged out. A stale-read ratio
    is a few races, and which ones happen depends on those draws too: pooled over 4
    seeds, one draw's ratio still varies by 0.12-0.17 point from draw to draw, and
    draw 0 read 0.1 point below the mean of ten in the grid's write cells (session 10,
    docs/fidelity-grid.md). Each draw's stale reads and reads are kept (`draw_sd`)."""
    cell = Cell(scenario.name, STRATEGY, "sim", seed)
    runs = [run_cell(scenario, cell, backend=SimBackend(draw=k)).summary for k in range(draws)]
    if draws == 1:
        return runs[0]
    out = pool(runs) | {"seed": runs[0].get("seed")}
    out["draw_stale_reads"] = [r["stale_reads"] for r in runs]
    out["draw_reads"] = [r["reads"] for r in runs]
    return out


def draw_sd(summary: dict[str, Any]) -> float | None:
    """The standard deviation of the stale-read ratio from one simulator draw to the
    next (each pooled over the seeds): the simulator's own noise, beside the real run's
    difference from the mean."""
    stale, reads = summary.get("draw_stale_reads"), summary.get("draw_reads")
    if not stale or not reads or len(stale) < 2:
        return None
    return float(np.std([s / r for s, r in zip(stale, reads, strict=True) if r], ddof=1))


def run_twin(
    sim_scenario: Scenario, real: dict[str, Any], seed: int, *, model: str = "lag"
) -> dict[str, Any]:
    """The latency-matched simulator run of a real run's summary (`lab.fidelity.matched`):
    the real cache-operation times around each simulated operation, the origin's
    lognormals through the real origin calls' p50/p99 (`model="lag"`), or the stalls
    fitted to the real cache-operation times on every cache and origin call
    (`model="stall"`, `lab.fidelity.stalls`). Its summary, with the latencies it was
    given under `twin_latencies`."""
    measured = Measured.from_summary(real)
    lag = real.get("cache_op_quantiles")
    cell = Cell(sim_scenario.name, STRATEGY, "sim", seed)
    if model not in ("lag", "stall"):
        raise ValueError(f"no twin model {model!r} (lag, stall)")
    if model == "stall" and lag:
        twin_scenario = matched_scenario(sim_scenario, Measured(), cache="lag")
        summary = run_cell(twin_scenario, cell, backend=StalledSimBackend(lag)).summary
    elif lag:
        twin_scenario = matched_scenario(sim_scenario, measured, cache="lag")
        summary = run_cell(twin_scenario, cell, backend=LaggedSimBackend(lag)).summary
    else:  # no measured distribution of cache operations: the lognormal rtt
        twin_scenario = matched_scenario(sim_scenario, measured, cache="rtt")
        summary = run_cell(twin_scenario, cell).summary
    summary["twin_latencies"] = describe(twin_scenario)
    return summary


def sim_scenario_for(scenario: Scenario, binary: ServerBinary) -> Scenario:
    """The scenario the simulator runs against `binary`: bytes counted as it counts them."""
    model = "valkey9" if binary.flavor == "valkey" else None
    return scenario.model_copy(
        update={"topology": scenario.topology.model_copy(update={"memory_model": model})}
    )


def run_pairs(
    cell: FidelityCell,
    binary: ServerBinary,
    seeds: Sequence[int],
    *,
    duration: float = DURATION,
    rate: float = RATE,
    matched: bool = False,
    twin_model: str = "lag",
    sim_draws: int = 1,
) -> tuple[Row | None, list[str]]:
    """`run_pair` on every seed, pooled into one row (`pool`): stale reads are rare,
    bursty events, so one 12 s run's stale-read ratio is too noisy to judge a 0.5 point
    target (docs/fidelity-grid.md). Returns the row (None if every real run was
    skipped) and the skip messages."""
    rows: list[Row] = []
    skipped: list[str] = []
    for seed in seeds:
        row = run_pair(
            cell,
            binary,
            seed=seed,
            duration=duration,
            rate=rate,
            matched=matched,
            twin_model=twin_model,
            sim_draws=sim_draws,
        )
        if isinstance(row, str):
            skipped.append(row)
        else:
            rows.append(row)
    if not rows:
        return None, skipped
    if len(rows) == 1:
        return rows[0], skipped
    twins = [r.twin for r in rows if r.twin is not None]
    return (
        Row(
            cell,
            binary.label,
            pool([r.sim for r in rows]),
            pool([r.real for r in rows]),
            pool(twins) if len(twins) == len(rows) else None,
            _mean_latencies([r.twin_latencies or {} for r in rows]) if twins else None,
            seeds=len(rows),
            runs=tuple(rows),
            sim_draws=sim_draws,
        ),
        skipped,
    )


_SUMMED = ("hits", "reads", "stale_reads", "errors", "cache_errors", "writes", "requests")
_MEDIAN = (
    "read_latency_p50",
    "read_latency_p99",
    "cache_op_p50",
    "cache_op_p99",
    "origin_read_p50",
    "origin_read_p99",
    "origin_write_p50",
    "origin_write_p99",
)


def pool(summaries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Several runs' summaries as one: counts summed and ratios recomputed from them
    (every read weighs the same), keys held averaged, latencies the median of the runs'
    (their percentiles cannot be pooled exactly), the load generator's lag the worst."""
    if not summaries:
        raise ValueError("nothing to pool")
    out: dict[str, Any] = {}
    for name in _SUMMED:
        values = [s[name] for s in summaries if s.get(name) is not None]
        if values:
            out[name] = sum(values)
    reads = out.get("reads", 0)
    out["hit_ratio"] = out.get("hits", 0) / reads if reads else None
    out["stale_read_ratio"] = out.get("stale_reads", 0) / reads if reads else None
    out["cache_keys"] = round(sum(s["cache_keys"] for s in summaries) / len(summaries))
    out.setdefault("errors", 0)
    for name in _MEDIAN:
        values = [s[name] for s in summaries if s.get(name) is not None]
        out[name] = float(np.median(values)) if values else None
    lags = [s["driver_lag_p99"] for s in summaries if s.get("driver_lag_p99") is not None]
    out["driver_lag_p99"] = max(lags) if lags else None
    out["runs"] = len(summaries)
    if all("draw_reads" in s for s in summaries):  # seeds of `simulate` runs: per draw
        for name in ("draw_stale_reads", "draw_reads"):
            out[name] = [sum(x) for x in zip(*(s[name] for s in summaries), strict=True)]
    return out


def _mean_latencies(items: Sequence[dict[str, float | None]]) -> dict[str, float | None]:
    keys = {k for item in items for k in item}
    out: dict[str, float | None] = {}
    for k in sorted(keys):
        values = [v for item in items if (v := item.get(k)) is not None]
        out[k] = float(np.mean(values)) if values else None
    return out


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


def select(cells: Sequence[FidelityCell], patterns: Sequence[str]) -> list[FidelityCell]:
    """The cells whose name contains every one of `patterns` (`w10`, `-n1-`, ...)."""
    return [c for c in cells if all(p in c.name for p in patterns)]


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
