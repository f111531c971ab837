"""The latency-matched twin's pure parts (no servers): fitting a lognormal through a
measured p50/p99, the matched scenario, sampling measured quantiles, pooling seeds, and
the simulator with the measured time around each cache operation."""

from __future__ import annotations

import itertools
import math
import types
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lab.fidelity.grid import (
    FidelityCell,
    Row,
    pool,
    run_twin,
    scenario_for,
    select,
)
from lab.fidelity.matched import (
    UNQUEUED,
    LaggedSimBackend,
    Measured,
    fit_lognormal,
    matched_scenario,
    quantile_sampler,
    quantiles,
)
from lab.fidelity.report import section, twin_table, twin_verdict
from lab.fidelity.stalls import Stalls, fit_stalls
from lab.metrics.histogram import LogHistogram
from lab.runner import run_cell
from lab.sampling import draw
from lab.scenario import Cell, Distribution

CELL = FidelityCell("1KiB", 1, 4, 0.9)


def test_fit_lognormal_goes_through_the_measured_percentiles() -> None:
    dist = fit_lognormal(0.002, 0.050)
    assert dist.distribution == "lognormal"
    assert dist.median == pytest.approx(0.002) and dist.p99 == pytest.approx(0.050)
    samples = draw(dist, np.random.default_rng(1), 400_000)
    assert np.percentile(samples, 50) == pytest.approx(0.002, rel=0.02)
    assert np.percentile(samples, 99) == pytest.approx(0.050, rel=0.05)


def test_fit_lognormal_less_a_part_the_simulator_adds() -> None:
    dist = fit_lognormal(0.005, 0.040, minus=0.001)
    assert dist.median == pytest.approx(0.004) and dist.p99 == pytest.approx(0.039)


def test_fit_lognormal_floors() -> None:
    narrow = fit_lognormal(0.003, 0.003)  # a lognormal needs p99 > median
    assert narrow.median == pytest.approx(0.003)
    assert narrow.p99 is not None and narrow.median is not None
    assert narrow.p99 > narrow.median
    tiny = fit_lognormal(0.0002, 0.001, minus=0.0005)  # less than nothing left
    assert tiny.median is not None and tiny.median > 0 and tiny.p99 is not None
    assert tiny.p99 > tiny.median


@pytest.mark.parametrize(
    ("p50", "p99"), [(0.0, 0.01), (-1.0, 0.01), (0.01, math.nan), (math.inf, 1.0)]
)
def test_fit_lognormal_refuses_what_is_not_a_latency(p50: float, p99: float) -> None:
    with pytest.raises(ValueError):
        fit_lognormal(p50, p99)


def test_measured_from_a_summary() -> None:
    summary = {
        "cache_op_p50": 0.0002,
        "cache_op_p99": 0.05,
        "origin_read_p50": 0.007,
        "origin_read_p99": 0.09,
        "origin_write_p50": None,
        "origin_write_p99": math.nan,
        "hit_ratio": 0.5,
    }
    m = Measured.from_summary(summary)
    assert (m.cache_op_p50, m.cache_op_p99) == (0.0002, 0.05)
    assert (m.origin_read_p50, m.origin_read_p99) == (0.007, 0.09)
    assert m.origin_write_p50 is None and m.origin_write_p99 is None
    assert Measured.from_summary({"cache_op_p50": True, "cache_op_p99": -1}) == Measured()


def test_matched_scenario_with_the_lag_model() -> None:
    scenario = scenario_for(CELL)
    measured = Measured(0.0002, 0.05, 0.007, 0.09, 0.011, 0.08)
    twin = matched_scenario(scenario, measured)
    zero = Distribution(distribution="constant", value=0.0)
    assert twin.topology.network.rtt == zero and twin.topology.service_time == zero
    assert twin.origin.read_latency == fit_lognormal(0.007, 0.09)  # nothing to take off
    assert twin.origin.write_latency == fit_lognormal(0.011, 0.08)
    # everything else as it was, and the scenario itself untouched
    assert twin.workload == scenario.workload and twin.keyspace == scenario.keyspace
    assert twin.topology.capacity == scenario.topology.capacity
    assert twin.origin.concurrency == UNQUEUED  # the measured times include the queue
    assert matched_scenario(scenario, Measured(0.0002, 0.05)).origin == scenario.origin
    assert scenario.topology.network.rtt.median == pytest.approx(0.0003)
    assert scenario.origin.read_latency.median == pytest.approx(0.005)


def test_matched_scenario_with_a_lognormal_rtt() -> None:
    scenario = scenario_for(CELL)
    service = scenario.topology.service_time.mean_value
    measured = Measured(cache_op_p50=0.001, cache_op_p99=0.02, origin_read_p50=0.008)
    twin = matched_scenario(scenario, measured, cache="rtt")
    rtt = twin.topology.network.rtt
    assert rtt == fit_lognormal(0.001, 0.02, minus=service)
    # the origin call takes an rtt in the simulator: its median comes off the service
    assert twin.origin.read_latency == scenario.origin.read_latency  # p99 not measured
    both = Measured(0.001, 0.02, 0.008, 0.06)
    assert matched_scenario(scenario, both, cache="rtt").origin.read_latency == fit_lognormal(
        0.008, 0.06, minus=rtt.median or 0.0
    )


def test_matched_scenario_keeps_what_was_not_measured() -> None:
    scenario = scenario_for(CELL)
    twin = matched_scenario(scenario, Measured(), cache="rtt")
    assert twin.topology.network == scenario.topology.network and twin.origin == scenario.origin


def test_quantile_sampler_draws_the_measured_distribution() -> None:
    qs = [0.0, 0.001, 0.002, 0.010, 0.100]  # at ranks 0, .25, .5, .75, 1
    draw_one = quantile_sampler(qs, np.random.default_rng(3))
    xs = np.array([draw_one() for _ in range(200_000)])
    assert xs.min() >= 0.0 and xs.max() <= 0.100
    assert np.percentile(xs, 25) == pytest.approx(0.001, rel=0.03)
    assert np.percentile(xs, 50) == pytest.approx(0.002, rel=0.03)
    assert np.percentile(xs, 75) == pytest.approx(0.010, rel=0.03)
    assert quantile_sampler([0.004, 0.004], np.random.default_rng(1))() == 0.004


@pytest.mark.parametrize("qs", [[0.001], [0.002, 0.001], [-0.001, 0.0], [0.0, math.inf]])
def test_quantile_sampler_refuses(qs: list[float]) -> None:
    with pytest.raises(ValueError):
        quantile_sampler(qs, np.random.default_rng(1))


def test_quantiles_of_a_histogram() -> None:
    hist = LogHistogram()
    assert quantiles(hist) is None
    hist.record_many(np.random.default_rng(2).lognormal(math.log(0.001), 1.0, 50_000))
    qs = quantiles(hist, steps=100)
    assert qs is not None and len(qs) == 101
    assert qs[0] == hist.min and qs[-1] == hist.max
    assert all(a <= b for a, b in itertools.pairwise(qs))
    assert qs[50] == pytest.approx(0.001, rel=0.05)


def test_pool_sums_counts_and_recomputes_ratios() -> None:
    a = {"hits": 60, "reads": 100, "stale_reads": 1, "errors": 0, "cache_keys": 1000}
    b = {"hits": 150, "reads": 300, "stale_reads": 9, "errors": 2, "cache_keys": 1002}
    a |= {"read_latency_p50": 0.001, "driver_lag_p99": 0.004}
    b |= {"read_latency_p50": 0.003, "driver_lag_p99": 0.020}
    pooled = pool([a, b])
    assert pooled["reads"] == 400 and pooled["hits"] == 210 and pooled["errors"] == 2
    assert pooled["hit_ratio"] == pytest.approx(210 / 400)
    assert pooled["stale_read_ratio"] == pytest.approx(10 / 400)  # not the mean of ratios
    assert pooled["cache_keys"] == 1001 and pooled["runs"] == 2
    assert pooled["read_latency_p50"] == pytest.approx(0.002)
    assert pooled["driver_lag_p99"] == 0.020 and pooled["cache_op_p50"] is None
    with pytest.raises(ValueError):
        pool([])


def test_select_cells_by_name() -> None:
    cells = [CELL, FidelityCell("1KiB", 1, 4, 1.0), FidelityCell("100B", 3, 1, 0.9)]
    assert select(cells, ["w10"]) == [CELL, cells[2]]
    assert select(cells, ["w10", "-n1-"]) == [CELL]
    assert select(cells, []) == cells


def _summary(hit: float, stale: float) -> dict[str, object]:
    return {
        "hit_ratio": hit,
        "stale_read_ratio": stale,
        "cache_keys": 1000,
        "errors": 0,
        "read_latency_p50": 0.001,
    }


def test_a_default_row_has_no_new_columns() -> None:
    plain = Row(CELL, "redis-7", _summary(0.6, 0.01), _summary(0.59, 0.016)).record()
    assert not any("twin" in k for k in plain) and "seeds" not in plain
    twin = Row(
        CELL,
        "redis-7",
        _summary(0.6, 0.01),
        _summary(0.59, 0.016),
        _summary(0.585, 0.015),
        {"rtt_median": None},
        seeds=3,
    ).record()
    assert set(plain) < set(twin) and twin["seeds"] == 3
    assert twin["hit_twin_diff_points"] == pytest.approx(0.5)
    assert twin["stale_twin_diff_points"] == pytest.approx(0.1)
    assert twin["stale_diff_points"] == pytest.approx(0.6)


def test_the_report_shows_the_twin_only_when_run() -> None:
    plain = pd.DataFrame([Row(CELL, "r", _summary(0.6, 0.01), _summary(0.59, 0.016)).record()])
    assert "twin" not in section(plain, None)
    row = Row(CELL, "r", _summary(0.6, 0.01), _summary(0.59, 0.016), _summary(0.585, 0.015))
    rows = pd.DataFrame([row.record()])
    text = section(rows, None)
    assert "latency-matched twin" in text and twin_table(rows) in text
    assert twin_verdict(rows).startswith("Latency-matched twin: 1 of 1 pair(s) within")


def test_the_lagged_simulator_adds_the_time_around_each_operation() -> None:
    """A constant 2 ms around every cache operation (rtt and service time zero): each
    operation takes 2 ms (simulated time, not wall clock)."""
    scenario = matched_scenario(scenario_for(CELL, duration=3.0), Measured())
    cell = Cell(scenario.name, "cache-aside", "sim", 1)
    summary = run_cell(scenario, cell, backend=LaggedSimBackend([0.002, 0.002])).summary
    assert summary["cache_op_p50"] == pytest.approx(0.002, rel=0.01)  # histogram bins
    assert summary["cache_op_p99"] == pytest.approx(0.002, rel=0.01)
    assert summary["errors"] == 0 and summary["reads"] > 0
    again = run_cell(scenario, cell, backend=LaggedSimBackend([0.002, 0.002])).summary
    assert again["hit_ratio"] == summary["hit_ratio"]  # deterministic per seed
    assert again["stale_reads"] == summary["stale_reads"]


def test_the_twin_of_a_summary() -> None:
    """`run_twin` takes the real run's quantiles and origin percentiles."""
    scenario = scenario_for(CELL, duration=3.0)
    real = {
        "cache_op_quantiles": [0.0001, 0.0002, 0.0003, 0.0004, 0.0005],
        "origin_read_p50": 0.007,
        "origin_read_p99": 0.09,
        "origin_write_p50": 0.011,
        "origin_write_p99": 0.08,
    }
    twin = run_twin(scenario, real, seed=1)
    latencies = twin["twin_latencies"]
    assert latencies["origin_read_median"] == pytest.approx(0.007)
    assert latencies["rtt_median"] is None  # the constant zero rtt
    assert twin["cache_op_p50"] == pytest.approx(0.0003, rel=0.2)
    no_quantiles = run_twin(scenario, {"cache_op_p50": 0.001, "cache_op_p99": 0.003}, seed=1)
    assert no_quantiles["twin_latencies"]["rtt_median"] == pytest.approx(
        0.001 - scenario.topology.service_time.mean_value
    )


# --- the stall twin ---------------------------------------------------------------------------


def test_fit_stalls_splits_body_and_stalls() -> None:
    # 0.1-0.3 ms for 90% of operations, then up to 50 ms
    ranks = np.linspace(0, 1, 201)
    qs = np.where(ranks <= 0.9, 0.0001 + 0.0002 * ranks / 0.9, 0.0003 + (ranks - 0.9) * 0.497)
    fit = fit_stalls(qs.tolist())
    median = float(np.interp(0.5, ranks, qs))
    assert fit.threshold == pytest.approx(median + 0.001)  # 3x the median is less
    assert fit.share == pytest.approx(1 - np.interp(fit.threshold, qs, ranks))
    assert 0.08 < fit.share < 0.1
    assert len(fit.body) == len(fit.excess) == 201
    assert max(fit.body) == pytest.approx(fit.threshold)
    assert fit.excess[-1] == pytest.approx(qs[-1] - median)
    fast = fit_stalls([0.0001, 0.0002, 0.0003])  # nothing slow: no stalls
    assert fast.share == 0.0
    with pytest.raises(ValueError):
        fit_stalls([0.001, 0.0005, 0.002])


def test_stalls_release_what_falls_in_them() -> None:
    stalls = Stalls(0.2, lambda: 0.010, np.random.default_rng(4))
    assert stalls.release(5.0) >= 5.0  # built lazily as far as asked
    starts, ends = np.array(stalls.starts), np.array(stalls.ends)
    assert np.all(ends - starts == pytest.approx(0.010)) and np.all(starts[1:] >= ends[:-1])
    stalled = (ends - starts).sum() / ends[-1]
    assert stalled == pytest.approx(0.2, abs=0.03)
    s0, e0 = stalls.starts[3], stalls.ends[3]
    assert stalls.release((s0 + e0) / 2) == e0 and stalls.release(s0) == e0
    assert stalls.release(e0) == e0 and stalls.release(e0 + 1e-9) == e0 + 1e-9
    never = Stalls(0.0, lambda: 0.010, np.random.default_rng(4))
    assert never.release(3.0) == 3.0 and never.starts == []
    with pytest.raises(ValueError):
        Stalls(1.0, lambda: 0.010, np.random.default_rng(4))


def test_the_stall_twin_runs_and_holds_its_stalls() -> None:
    """Stalls fitted to measured times: the twin's cache operations are slow only as
    often as the real ones (simulated time)."""
    scenario = scenario_for(CELL, duration=3.0)
    ranks = np.linspace(0, 1, 201)
    qs = np.where(ranks <= 0.95, 0.0001 + 0.0002 * ranks, 0.0003 + (ranks - 0.95) * 0.4)
    real = {"cache_op_quantiles": qs.tolist()}
    twin = run_twin(scenario, real, seed=1, model="stall")
    assert twin["errors"] == 0 and twin["stall_share"] == pytest.approx(0.0475, abs=0.01)
    assert twin["cache_op_p50"] < 0.001 < twin["cache_op_p99"]
    assert twin["origin_read_calls"] > 0 and twin["origin_read_p50"] >= 0.004
    assert run_twin(scenario, real, seed=1, model="stall")["hit_ratio"] == twin["hit_ratio"]
    with pytest.raises(ValueError):
        run_twin(scenario, real, seed=1, model="nope")


def test_run_pairs_pools_the_seeds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without servers: `run_pair` stands in, one seed's real run skipped."""
    import lab.fidelity.grid as grid

    def fake(cell: FidelityCell, binary: object, *, seed: int, **_: object) -> Row | str:
        if seed == 3:
            return "skipped"
        s = {"hits": 50 + seed, "reads": 100, "stale_reads": seed, "cache_keys": 1000}
        s |= {"errors": 0, "seed": seed}
        return Row(cell, "r", s, s, s)

    monkeypatch.setattr(grid, "run_pair", fake)
    binary: Any = types.SimpleNamespace(label="r")
    row, skipped = grid.run_pairs(CELL, binary, [1, 2, 3])
    assert skipped == ["skipped"] and row is not None and row.seeds == 2
    assert [r.sim["seed"] for r in row.runs] == [1, 2]
    assert row.real["hit_ratio"] == pytest.approx(103 / 200)
    assert row.twin is not None and row.twin["stale_read_ratio"] == pytest.approx(3 / 200)
    one, _ = grid.run_pairs(CELL, binary, [1])
    assert one is not None and one.seeds == 1 and one.runs == ()
    none, skips = grid.run_pairs(CELL, binary, [3])
    assert none is None and skips == ["skipped"]


@pytest.mark.parametrize(
    "args",
    [["--cells", "nosuch"], ["--seeds", "0"], ["--duration", "-1"], ["--twin", "nope"]],
)
def test_the_new_options_refuse_nonsense(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    """Refused before any server starts: exit 2, one line, nothing written."""
    from lab.cli import main

    try:
        code = main(["fidelity", *args, "--results", str(tmp_path)])
    except SystemExit as exited:  # argparse's refusal
        code = exited.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err
    assert not list(tmp_path.iterdir())
