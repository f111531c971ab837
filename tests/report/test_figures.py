"""Figures: valid files, stable colours, side-by-side backends, warm-up and fault shading."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from PIL import Image

from lab.report.figures import (
    FORMATS,
    TITLES,
    WARMUP_LABEL,
    fault_spans,
    format_seconds,
    hit_ratio_figure,
    scenario_figures,
    strategy_colors,
    warmup_span,
    write_figures,
)
from lab.results import (
    load_all,
    load_distributions,
    load_staleness_curves,
    load_timeseries,
    write_run,
)
from lab.runner import run_cell
from lab.scenario import parse_scenario

from .conftest import SMALL

STRATEGIES = ["aside", "ttl", "update"]


def _drawn_colors(fig: Figure) -> dict[str, set[str]]:
    """Colours of every artist that a figure labelled with a strategy name."""
    found: dict[str, set[str]] = {}
    for ax in fig.axes:
        for line in ax.lines:
            if line.get_label() in STRATEGIES:
                found.setdefault(str(line.get_label()), set()).add(to_hex(str(line.get_color())))
        for patch in ax.patches:
            if patch.get_label() in STRATEGIES:
                found.setdefault(str(patch.get_label()), set()).add(
                    to_hex(patch.get_facecolor(), keep_alpha=False)
                )
        for coll in ax.collections:
            if coll.get_label() in STRATEGIES and len(coll.get_facecolor()):
                found.setdefault(str(coll.get_label()), set()).add(
                    to_hex(coll.get_facecolor()[0], keep_alpha=False)
                )
    return found


def test_write_figures_makes_valid_png_and_svg(small_results: Path, tmp_path: Path) -> None:
    written = write_figures(load_all(small_results), tmp_path)
    files = written["report-small"]
    assert [f.name for f in files] == [
        "comparison",
        "hit_ratio",
        "latency",
        "latency_tail",
        "staleness",
        "freshness",
        "origin_load",
    ]
    folder = tmp_path / "report-small" / "figures"
    for figure in files:
        assert set(figure.files) == set(FORMATS)
        png, svg = figure.files["png"], figure.files["svg"]
        assert png.parent == folder and svg.parent == folder
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(png) as image:
            image.verify()
        with Image.open(png) as image:
            width, height = image.size
            assert width >= 800 and height >= 300
        root = ET.parse(svg).getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert figure.title == TITLES[figure.name]
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temp files left


def test_colour_mapping_is_stable_distinct_and_order_free() -> None:
    names = ["cache-aside", "ttl-only", "update", "write-through", "write-behind"]
    colors = strategy_colors(names)
    assert colors == strategy_colors(reversed(names)) == strategy_colors(names + names)
    assert len(set(colors.values())) == len(names)
    many = strategy_colors(f"s{i}" for i in range(15))
    assert len(set(many.values())) == 15  # the extra colours kick in past the palette
    # a small set gets the first, most distinct colours of the palette, in name order
    assert list(strategy_colors(["b", "a"]).items()) == [("a", "#1f77b4"), ("b", "#ff7f0e")]


def all_figures(root: Path) -> dict[str, Figure]:
    return scenario_figures(
        load_all(root),
        load_timeseries(root),
        load_distributions(root),
        load_staleness_curves(root),
    )


def test_every_figure_uses_the_same_colour_per_strategy(small_results: Path) -> None:
    figures = all_figures(small_results)
    assert len(figures) == len(TITLES)
    expected = strategy_colors(STRATEGIES)
    for name, fig in figures.items():
        drawn = _drawn_colors(fig)
        assert set(drawn) == set(STRATEGIES), name
        for strategy, colors in drawn.items():
            assert colors == {expected[strategy]}, (name, strategy, colors)
        legend = fig.legends[0]
        labels = [t.get_text() for t in legend.get_texts()]
        assert labels[: len(STRATEGIES)] == sorted(STRATEGIES), name


def test_backends_side_by_side_never_merged(two_backend_results: Path) -> None:
    runs = load_all(two_backend_results)
    figures = scenario_figures(runs, load_timeseries(two_backend_results))
    titles = [ax.get_title() for ax in figures["hit_ratio"].axes]
    assert titles == ["sim (modelled)", "redis (measured)"]
    assert figures["hit_ratio"].axes[1].get_xlabel() == "wall time since start (s)"
    latency_titles = {ax.get_title() for ax in figures["latency"].axes}
    assert "read latency, redis (measured)" in latency_titles
    # comparison: one bar per strategy and backend, told apart by hatching
    legend = [t.get_text() for t in figures["comparison"].legends[0].get_texts()]
    assert "redis (measured)" in legend and "sim (modelled)" in legend
    hit_axes = figures["comparison"].axes[0]
    bars = [p for p in hit_axes.patches if p.get_label() in STRATEGIES]
    assert len(bars) == 2 * len(STRATEGIES)
    assert sum(1 for p in bars if p.get_hatch()) == len(STRATEGIES)


def test_seed_spread_is_drawn_when_there_are_several_seeds(small_results: Path) -> None:
    runs = load_all(small_results)
    fig = scenario_figures(runs, load_timeseries(small_results))["hit_ratio"]
    assert "mean over 2 seeds" in fig.get_suptitle()
    bands = [c for c in fig.axes[0].collections if c.get_label() in STRATEGIES]
    assert len(bands) == len(STRATEGIES)


def test_warmup_and_fault_windows_are_shaded(small_results: Path) -> None:
    runs = load_all(small_results)
    ts = load_timeseries(small_results)
    assert warmup_span(ts) == (0.0, 1.0)
    assert fault_spans(ts) == []
    # the hook for fault injection: a `fault` label column or `fault_<kind>` flags
    ts = ts.copy()
    ts["fault"] = ts["t"].map(
        lambda t: "node_crash" if t == 1.0 else "node_crash,origin_slow" if t == 2.0 else ""
    )
    ts["fault_partition"] = ts["t"] == 2.0
    ts["fault_origin_down"] = ts["t"].map(lambda t: 2 if t == 0.0 else 0)  # a count works too
    spans = fault_spans(ts)
    assert spans == [
        (0.0, 1.0, "origin_down"),
        (1.0, 3.0, "node_crash"),
        (2.0, 3.0, "origin_slow"),
        (2.0, 3.0, "partition"),
    ]
    fig = hit_ratio_figure("report-small", runs, ts, strategy_colors(STRATEGIES))
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "fault: node_crash" in legend and "fault: partition" in legend
    assert WARMUP_LABEL in legend


def test_trailing_drain_intervals_are_not_plotted(small_results: Path) -> None:
    ts = load_timeseries(small_results)
    fig = scenario_figures(load_all(small_results), ts)["hit_ratio"]
    last_started = ts.loc[(ts["reads"] + ts["writes"]) > 0, "t_end"].max()
    for line in fig.axes[0].lines:
        if line.get_label() in STRATEGIES:
            assert np.asarray(line.get_xdata(), dtype=float).max() < last_started


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0005, "500 µs"), (0.002, "2 ms"), (0.25, "250 ms"), (2.0, "2 s"), (0.0, "0")],
)
def test_duration_axis_labels(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


def test_empty_frame_writes_nothing(tmp_path: Path) -> None:
    assert write_figures(pd.DataFrame(columns=["scenario"]), tmp_path) == {}
    assert list(tmp_path.iterdir()) == []


def test_fault_windows_of_a_real_run_are_shaded(tmp_path: Path) -> None:
    """End to end with the fault injector: the timeseries marks the crash, the figure shades it."""
    data = dict(SMALL, name="report-fault", seeds=[1], duration="4s")
    data["faults"] = [{"kind": "node_crash", "node": 1, "at": "2s", "duration": "1s"}]
    scenario = parse_scenario(data, "test")
    for cell in scenario.cells(strategies=["aside"]):
        write_run(tmp_path, scenario, run_cell(scenario, cell))
    ts = load_timeseries(tmp_path)
    assert fault_spans(ts) == [(2.0, 3.0, "node_crash")]
    fig = scenario_figures(load_all(tmp_path), ts)["hit_ratio"]
    assert "fault: node_crash" in [t.get_text() for t in fig.legends[0].get_texts()]


def test_latency_tail_uses_histograms_and_falls_back_to_percentiles(
    small_results: Path, tmp_path: Path
) -> None:
    fig = all_figures(small_results)["latency_tail"]
    solid = [line for line in fig.axes[0].lines if line.get_label() in STRATEGIES]
    assert solid and all(line.get_linestyle() == "-" for line in solid)
    assert len(solid[0].get_xdata()) > 20  # a histogram, not five points
    # a run folder without distributions.csv (an older run, say): the percentile staircase
    shutil.copytree(small_results, tmp_path, dirs_exist_ok=True)
    for path in tmp_path.rglob("distributions.csv"):
        path.unlink()
    fig = all_figures(tmp_path)["latency_tail"]
    dashed = [
        line
        for line in fig.axes[0].lines
        if line.get_label() in STRATEGIES and line.get_linestyle() == "--"
    ]
    assert len(dashed) == len(STRATEGIES)
    assert "staircase through p50" in fig.get_supxlabel()


def test_scenarios_drawn_in_worker_processes_match(small_results: Path, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    shutil.copytree(small_results, root)
    twin = root / "report-twin"
    shutil.copytree(root / "report-small", twin)
    for summary in twin.rglob("summary.json"):
        summary.write_text(summary.read_text().replace('"report-small"', '"report-twin"'))
    frame = load_all(root)
    assert set(frame["scenario"]) == {"report-small", "report-twin"}
    parallel = write_figures(frame, tmp_path / "a", ("png",), jobs=2)
    serial = write_figures(frame, tmp_path / "b", ("png",), jobs=1)
    assert list(parallel) == list(serial) == ["report-small", "report-twin"]
    for scenario, files in parallel.items():
        assert [f.name for f in files] == [f.name for f in serial[scenario]]
        for figure in files:
            assert all(path.is_file() for path in figure.files.values())


def test_laid_out_once_gives_the_same_files_as_savefig_laying_out(
    small_results: Path, tmp_path: Path
) -> None:
    from lab.report.figures import lay_out, save_figure

    for name, fig in all_figures(small_results).items():
        # as savefig does it: the first save lays the figure out, the layout then kept
        for fmt in FORMATS:
            save_figure(fig, tmp_path / "savefig" / f"{name}.{fmt}", fmt)
            fig.set_layout_engine("none")
    for name, fig in all_figures(small_results).items():
        lay_out(fig)
        assert fig.get_layout_engine() is None
        for fmt in FORMATS:
            save_figure(fig, tmp_path / "once" / f"{name}.{fmt}", fmt)
    for path in sorted((tmp_path / "savefig").iterdir()):
        assert path.read_bytes() == (tmp_path / "once" / path.name).read_bytes(), path.name
