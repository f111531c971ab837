"""Confidence intervals over seeds (checked against scipy.stats.t and by hand), the
table's `84.3% ± 0.4`, the sweep figure's bands, and `report --target`."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lab.cli import main
from lab.report.stats import mean_ci, t975
from lab.report.sweep_figure import sweep_figures
from lab.report.table import markdown_table
from lab.report.target import TargetError, parse_target, target_report
from lab.results import write_run
from lab.runner import run_cell
from lab.scenario import parse_scenario


@pytest.mark.parametrize("df", [1, 2, 4, 9, 29, 30, 31, 45, 100, 1000, 10**6])
def test_t_quantile_matches_scipy(df: int) -> None:
    assert t975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=1e-4)


def test_interval_by_hand_and_by_scipy() -> None:
    values = [0.84, 0.845, 0.842, 0.838, 0.846]
    ci = mean_ci(values)
    mean = sum(values) / 5
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 4)
    assert ci.mean == pytest.approx(mean)
    assert ci.half == pytest.approx(2.7764451051977934 * sd / math.sqrt(5))  # t(0.975, 4)
    low, high = stats.t.interval(0.95, 4, loc=mean, scale=stats.sem(values))
    assert (ci.low, ci.high) == (pytest.approx(low), pytest.approx(high))
    assert math.isnan(mean_ci([0.5]).half) and mean_ci([0.5]).mean == 0.5
    assert mean_ci([math.nan, None, 1.0, 3.0]).n == 2  # type: ignore[list-item]
    assert mean_ci([]).n == 0


def _frame(rows: list[tuple[str, str, int, float, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "scenario": "s",
                "point": point,
                "params.topology.capacity": int(point.split("=")[1]),
                "strategy": strategy,
                "backend": "sim",
                "seed": seed,
                "hit_ratio": hit,
                "stale_read_ratio": stale,
                "origin_reads": origin,
                "read_latency_p99": 0.002,
            }
            for point, strategy, seed, hit, stale, origin in rows
        ]
    )


SWEPT = _frame(
    [
        ("capacity=1000", "a", 1, 0.95, 0.02, 100.0),
        ("capacity=1000", "a", 2, 0.96, 0.03, 120.0),
        ("capacity=1000", "b", 1, 0.92, 0.005, 300.0),
        ("capacity=1000", "b", 2, 0.93, 0.004, 280.0),
        ("capacity=500", "a", 1, 0.84, 0.01, 900.0),
        ("capacity=500", "a", 2, 0.844, 0.01, 950.0),
        ("capacity=500", "b", 1, 0.80, 0.002, 1000.0),
        ("capacity=500", "b", 2, 0.81, 0.002, 1100.0),
    ]
)


def test_table_shows_mean_and_ci_and_orders_cells_by_value() -> None:
    text = markdown_table(SWEPT)
    lines = text.splitlines()
    assert lines[0].startswith("| cell | strategy | backend | seeds | hit ratio |")
    assert lines[2].startswith("| capacity=500 | a | sim | 2 | 84.2% ± 2.5 |")  # 500 first
    half = t975(1) * np.std([0.84, 0.844], ddof=1) / math.sqrt(2)
    assert f"± {100 * half:.1f}" == "± 2.5"
    assert "| 0.20% |" in lines[3]  # seeds that agree exactly: no interval to show


def test_sweep_figure_draws_a_band_per_strategy() -> None:
    figures = sweep_figures("s", SWEPT, {"a": "#1f77b4", "b": "#ff7f0e"})
    fig = figures["sweep"]
    hit = fig.axes[0]
    assert hit.get_xlabel() == "capacity"
    assert len(hit.lines) == 2 and len(hit.collections) == 2  # a line and a band each
    xs = sorted(hit.lines[0].get_xdata())
    assert xs == [500.0, 1000.0]


def test_target_lists_cells_meeting_every_bound_cheapest_first() -> None:
    text = target_report(SWEPT, "hit_ratio>=0.9,stale_read_ratio<=0.025")
    assert text.startswith("2 of 4 cells meet every bound")
    rows = [line for line in text.splitlines() if line.startswith("| s |")]
    assert [r.split(" | ")[1:3] for r in rows] == [["capacity=1000", "a"], ["capacity=1000", "b"]]
    none = target_report(SWEPT, "hit_ratio>=99%")
    assert none.startswith("No cell meets every bound (hit_ratio>=0.99) among 4 cells. Closest:")
    with pytest.raises(TargetError, match="no metric named 'hits'"):
        target_report(SWEPT, "hits>=0.9")
    with pytest.raises(TargetError, match="expected metric>=number"):
        parse_target("hit_ratio~0.9")


def test_report_target_on_a_real_sweep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = parse_scenario(
        {
            "name": "cap",
            "duration": "3s",
            "warmup": "1s",
            "seeds": [1, 2, 3],
            "keyspace": {"keys": 400},
            "workload": {"mix": {"write": 0.05}, "arrivals": {"rate": "500/s"}},
            "strategies": {"aside": {"read": "cache-aside", "write": "invalidate", "ttl": "1m"}},
            "sweep": {"grid": {"topology.capacity": [40, 400]}},
        }
    )
    for cell in scenario.cells():
        write_run(tmp_path, scenario.at(cell.point), run_cell(scenario.at(cell.point), cell))
    assert main(["report", str(tmp_path), "--target", "hit_ratio>=0.5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("1 of 2 cells meets every bound")
    assert "| cap | capacity=400 | aside | sim | 3 |" in out
    assert main(["report", str(tmp_path), "--target", "hit_ratio>"]) == 2
    assert "--target: 'hit_ratio>'" in capsys.readouterr().err


def test_figures_are_drawn_again_only_when_their_inputs_change(
    small_results: Path, tmp_path: Path
) -> None:
    from lab.report.document import write_report
    from lab.results import load_all

    frame = load_all(small_results)
    first = write_report(frame, tmp_path).figures
    times = {p: p.stat().st_mtime_ns for p in first}
    again = write_report(frame, tmp_path).figures
    assert again == first and {p: p.stat().st_mtime_ns for p in again} == times
    stamp = tmp_path / "report-small/figures/inputs.json"
    stamp.write_text(stamp.read_text().replace('"key": "', '"key": "changed'))
    redrawn = write_report(frame, tmp_path).figures
    assert redrawn == first and any(p.stat().st_mtime_ns != times[p] for p in redrawn)
