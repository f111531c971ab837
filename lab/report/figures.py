"""Figures over runs: one set per scenario, as PNG and SVG, one colour per strategy.

Input is what `lab.results` loads: the run table of `load_all` and the stacked
timeseries of `load_timeseries`. Figures are plain `matplotlib.figure.Figure`
objects (Agg canvas, no pyplot state), so building them never opens a window
and never changes a notebook's plotting backend.

Conventions every figure keeps:

- one colour per strategy, from `strategy_colors` over the scenario's strategy
  names (sorted, as in the tables), so a strategy has the same colour in every
  figure of a scenario and in its legend;
- one panel column per backend (`sim`, then real backends): simulated and
  measured numbers are shown side by side, never merged;
- several seeds are summarised as the mean with a min-max range (a band on
  time series, whiskers on points and bars); the caption says how many seeds;
- time series shade the warm-up (not in the summary) and any fault window
  (`fault` / `fault_<kind>` columns of the timeseries, when there are any).
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from lab.report import stamp
from lab.report.stats import mean_ci
from lab.report.sweep_figure import sweep_figures, sweep_title
from lab.report.sweeps import is_sweep

# tab10 without its grey (grey is kept for the warm-up shading)
PALETTE = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
]
# used only when a scenario has more strategies than PALETTE has colours
EXTRA = ["#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d"]
WARMUP_COLOR = "#7f7f7f"
# the timeseries flags whole intervals: those that start inside the warm-up
WARMUP_LABEL = "warm-up\n(intervals that\nstart in it)"
FAULT_COLOR = "#404040"  # not a strategy colour: dark grey hatching
FORMATS = ("png", "svg")
DPI = 120


@dataclass(frozen=True)
class FigureFile:
    """One written figure: a short name, a caption, and its files by format."""

    scenario: str
    name: str
    title: str
    files: dict[str, Path]


# --- colours ----------------------------------------------------------------------------------


def strategy_colors(strategies: Iterable[str]) -> dict[str, str]:
    """A distinct colour for each strategy name, in sorted order of the names.

    The mapping depends only on the set of names (never on the order of runs or
    figures), so every figure of a scenario, and its legend, agree; and it takes
    the palette's colours in order, so a small set gets the most distinct ones
    (blue, orange, green, red, ...) rather than two neighbours such as blue and
    cyan. Past the palette, lighter variants; past those, colours repeat.
    """
    names = sorted(set(strategies))
    slots = PALETTE + EXTRA
    return {name: slots[i % len(slots)] for i, name in enumerate(names)}


# --- small helpers ----------------------------------------------------------------------------


def backends_of(frame: pd.DataFrame) -> list[str]:
    """Backends present, `sim` first: the panel columns of every figure."""
    found = sorted({str(b) for b in frame["backend"]})
    return sorted(found, key=lambda b: (b != "sim", b))


def _backend_title(backend: str) -> str:
    return f"{backend} (modelled)" if backend == "sim" else f"{backend} (measured)"


def _time_label(backend: str) -> str:
    return "simulated time (s)" if backend == "sim" else "wall time since start (s)"


def format_seconds(x: float) -> str:
    """Axis label for a duration in seconds: 250 µs, 1.5 ms, 2 s."""
    if not math.isfinite(x) or x <= 0:
        return "0"
    if x < 1e-3:
        return f"{x * 1e6:g} µs"
    if x < 1:
        return f"{x * 1e3:g} ms"
    return f"{x:g} s"


def _log_seconds_axis(ax: Axes, axis: str = "y") -> None:
    """A log axis of durations labelled 1 ms, 2 ms, 5 ms... (decades only over a wide
    range, so that labels never run into each other). Call after plotting."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    if axis == "y":
        ax.set_yscale("log")
        ax.margins(y=0.08)  # markers at the extremes stay whole
        low, high = ax.get_ylim()  # log autoscaling ignores values <= 0
    else:
        ax.set_xscale("log")
        low, high = ax.get_xlim()
    decades = math.log10(high / low) if low > 0 and high > low else 1.0
    wide = decades > (4 if axis == "y" else 2.5)
    target.set_major_locator(LogLocator(base=10, subs=(1.0,) if wide else (1.0, 2.0, 5.0)))
    target.set_major_formatter(FuncFormatter(lambda v, _pos: format_seconds(v)))
    target.set_minor_formatter(NullFormatter())


def _percent_axis(ax: Axes) -> None:
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}%"))


def _tag(artists: Iterable[Artist], strategy: str) -> None:
    """Label every artist drawn for a strategy with its name (tests check the colours)."""
    for artist in artists:
        artist.set_label(strategy)


def _seeds_note(runs: pd.DataFrame, spread: str = "whiskers") -> str:
    counts = runs.groupby(["strategy", "backend"])["seed"].nunique()
    low, high = int(counts.min()), int(counts.max())
    if high <= 1:
        return "1 seed"
    n = f"{low}" if low == high else f"{low}-{high}"
    return f"mean over {n} seeds; {spread}: 95% confidence interval (Student t)"


MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">"]


def strategy_markers(colors: dict[str, str]) -> dict[str, str]:
    """A marker per strategy (in the colour mapping's order), so overlapping lines stay
    distinguishable and figures read in black and white too."""
    return {name: MARKERS[i % len(MARKERS)] for i, name in enumerate(colors)}


def _new_figure(rows: int, cols: int, *, width: float = 4.6, height: float = 3.2) -> Figure:
    # room for the legend on the right; never so narrow that the title is cut
    fig_width = max(8.0, 3.6 + width * cols)
    fig = Figure(figsize=(fig_width, 1.1 + height * rows), dpi=DPI, layout="constrained")
    fig.get_layout_engine().set(h_pad=0.08, hspace=0.06)  # type: ignore[union-attr,call-arg]
    return fig


def _title(fig: Figure, scenario: str, title: str, note: str, caveat: str = "") -> None:
    """Title (scenario: what) over a note (seeds); an optional caveat as a footnote."""
    chars = int(fig.get_figwidth() * 11)
    wrapped = "\n".join(textwrap.wrap(note, chars))
    fig.suptitle(f"{scenario}: {title}\n{wrapped}")
    if caveat:
        footnote = "\n".join(textwrap.wrap(caveat, int(fig.get_figwidth() * 13)))
        fig.supxlabel(footnote, fontsize="small", style="italic")


def _legend(
    fig: Figure,
    colors: dict[str, str],
    extra: Sequence[Artist] = (),
    *,
    lines: bool = False,
    marked: bool = True,
) -> None:
    handles: list[Artist] = []
    markers = strategy_markers(colors)
    for name, color in colors.items():
        if lines:
            marker = markers[name] if marked else None
            handles.append(Line2D([], [], color=color, marker=marker, label=name))
        else:
            handles.append(Patch(facecolor=color, edgecolor=color, label=name))
    handles.extend(extra)
    fig.legend(handles=handles, loc="outside right upper", title="strategy", fontsize="small")


def _pct_label(value: float) -> str:
    if value == 0:
        return "0%"
    if abs(value) < 1:
        return f"{value:.2g}%"
    return f"{value:.1f}%"


def _number(value: object) -> float:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return out


@dataclass(frozen=True)
class _Stat:
    mean: float
    low: float
    high: float
    seeds: int
    most: float = math.nan


def _stat(runs: pd.DataFrame, column: str, transform: Callable[[float], float] = float) -> _Stat:
    """Mean of a summary metric over seeds and its 95% confidence interval (Student t;
    `high` is the largest value seen, for "is there any"; NaN when undefined everywhere)."""
    if column not in runs.columns:
        return _Stat(math.nan, math.nan, math.nan, 0)
    values = np.array([transform(_number(v)) for v in runs[column]], dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return _Stat(math.nan, math.nan, math.nan, 0)
    ci = mean_ci(values)
    floor = 0.0 if values.min() >= 0 else -math.inf  # counts and ratios are not negative
    return _Stat(ci.mean, max(ci.low, floor), ci.high, ci.n, float(values.max()))


def _errorbar(
    ax: Axes, x: float, stat: _Stat, color: str, strategy: str, marker: str, markersize: float
) -> None:
    if not math.isfinite(stat.mean):
        return
    yerr = None
    if stat.seeds > 1:
        yerr = [[stat.mean - stat.low], [stat.high - stat.mean]]
    container = ax.errorbar(
        [x],
        [stat.mean],
        yerr=yerr,
        color=color,
        capsize=3,
        linestyle="none",
        marker=marker,
        markersize=markersize,
    )
    _tag(container.get_children(), strategy)


# --- time series ------------------------------------------------------------------------------


def _trim(ts: pd.DataFrame) -> pd.DataFrame:
    """Drop each run's trailing intervals in which no request started (the run's drain)."""
    keep = []
    for _, run in ts.groupby(["strategy", "backend", "seed"], sort=False):
        active = (run["reads"].fillna(0) + run["writes"].fillna(0)) > 0
        if active.any():
            last = active[active].index[-1]
            keep.append(run.loc[:last])
    return pd.concat(keep) if keep else ts.iloc[0:0]


def warmup_span(ts: pd.DataFrame) -> tuple[float, float] | None:
    """The warm-up as (start, end) in the run's time, from the `warmup` column."""
    if "warmup" not in ts.columns:
        return None
    marked = ts[ts["warmup"].astype(str).str.lower().isin(["true", "1", "1.0"])]
    if marked.empty:
        return None
    return float(marked["t"].min()), float(marked["t_end"].max())


def _active(value: object) -> bool:
    """True for a set flag: True, a non-zero number, or "true"/"yes"/a non-zero number as text."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in {"true", "yes"}:
            return True
        value = text
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return number == number and number != 0


def fault_spans(ts: pd.DataFrame) -> list[tuple[float, float, str]]:
    """Fault windows marked in a timeseries, as (start, end, kind), in time order.

    Read from the `fault` column (the kinds active during the interval, comma
    separated; empty when none) and from any `fault_<kind>` columns (true or
    non-zero while that fault is active). Adjacent intervals of one kind are
    merged. A timeseries without such columns has no fault windows.
    """
    columns = [c for c in ts.columns if c == "fault" or str(c).startswith("fault_")]
    if not columns or ts.empty:
        return []
    rows = ts.drop_duplicates("t").sort_values("t")
    active: list[set[str]] = [set() for _ in range(len(rows))]
    for column in columns:
        kind = "fault" if column == "fault" else str(column)[len("fault_") :]
        for i, value in enumerate(rows[column]):
            if column == "fault" and isinstance(value, str):
                active[i].update(k.strip() for k in value.split(",") if k.strip())
            elif _active(value):
                active[i].add(kind)
    spans: list[tuple[float, float, str]] = []
    starts = rows["t"].astype(float).tolist()
    ends = rows["t_end"].astype(float).tolist()
    for kind in sorted(set().union(*active)):
        open_span: list[float] | None = None
        for t0, t1, kinds in zip(starts, ends, active, strict=True):
            if kind in kinds and open_span is not None and t0 <= open_span[1]:
                open_span[1] = t1
            elif kind in kinds:
                if open_span is not None:
                    spans.append((open_span[0], open_span[1], kind))
                open_span = [t0, t1]
            elif open_span is not None:
                spans.append((open_span[0], open_span[1], kind))
                open_span = None
        if open_span is not None:
            spans.append((open_span[0], open_span[1], kind))
    return sorted(spans)


def _shade_time(ax: Axes, ts: pd.DataFrame) -> list[Artist]:
    """Shade warm-up and fault windows; return legend handles for what was shaded."""
    handles: list[Artist] = []
    span = warmup_span(ts)
    if span is not None:
        ax.axvspan(span[0], span[1], color=WARMUP_COLOR, alpha=0.15, linewidth=0)
        handles.append(Patch(facecolor=WARMUP_COLOR, alpha=0.3, label=WARMUP_LABEL))
    seen: set[str] = set()
    for start, end, label in fault_spans(ts):
        ax.axvspan(start, end, facecolor="none", edgecolor=FAULT_COLOR, hatch="//", alpha=0.3)
        if label not in seen:
            seen.add(label)
            handles.append(
                Patch(facecolor="none", edgecolor=FAULT_COLOR, hatch="//", label=f"fault: {label}")
            )
    return handles


def _time_series_figure(
    scenario: str,
    runs: pd.DataFrame,
    ts: pd.DataFrame,
    colors: dict[str, str],
    value: Callable[[pd.DataFrame], pd.Series],
    *,
    title: str,
    ylabel: str,
    percent: bool = False,
) -> Figure:
    backends = backends_of(runs)
    fig = _new_figure(1, len(backends))
    axes = fig.subplots(1, len(backends), squeeze=False, sharey=True)[0]
    extra: dict[str, Artist] = {}
    markers = strategy_markers(colors)
    for ax, backend in zip(axes, backends, strict=True):
        part = ts[ts["backend"] == backend]
        for handle in _shade_time(ax, part):
            extra.setdefault(str(handle.get_label()), handle)
        for strategy, color in colors.items():
            mine = part[part["strategy"] == strategy]
            if mine.empty:
                continue
            frame = pd.DataFrame({"t": (mine["t"] + mine["t_end"]) / 2, "v": value(mine)})
            by_t = _bands(frame)
            x = by_t.index.to_numpy(dtype=float)
            lines = ax.plot(
                x,
                by_t["mean"],
                color=color,
                marker=markers[strategy],
                markersize=4,
                linewidth=1.4,
                alpha=0.9,
            )
            _tag(lines, strategy)
            if mine["seed"].nunique() > 1:
                band = ax.fill_between(x, by_t["low"], by_t["high"], color=color, alpha=0.18)
                _tag([band], strategy)
        ax.set_title(_backend_title(backend), fontsize="medium")
        ax.set_xlabel(_time_label(backend))
        ax.set_xlim(left=0)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(ylabel)
    if percent:
        # zoom in on the range the lines use (in steps of 10 points), so that
        # strategies close to 100% stay apart; the axis says where it starts
        drawn = [np.asarray(line.get_ydata(), dtype=float) for ax in axes for line in ax.lines]
        finite = np.concatenate(drawn) if drawn else np.array([])
        finite = finite[np.isfinite(finite)]
        low = 0.0 if finite.size == 0 else max(0.0, math.floor((finite.min() - 5) / 10) * 10)
        axes[0].set_ylim(low, 100 + (100 - low) * 0.03)
        _percent_axis(axes[0])
    else:
        axes[0].set_ylim(bottom=0)
    _title(
        fig,
        scenario,
        title,
        f"{_seeds_note(runs, 'bands')}; points at interval midpoints; equal lines overlap",
    )
    _legend(fig, colors, list(extra.values()), lines=True)
    return fig


def _bands(frame: pd.DataFrame) -> pd.DataFrame:
    """Per time `t`: the mean of `v` over seeds and its 95% CI (low, high)."""
    rows = {t: mean_ci(part["v"]) for t, part in frame.groupby("t")}
    return pd.DataFrame(
        {
            "mean": [ci.mean for ci in rows.values()],
            "low": [ci.low for ci in rows.values()],
            "high": [ci.high for ci in rows.values()],
        },
        index=list(rows),
    ).sort_index()


def hit_ratio_figure(
    scenario: str, runs: pd.DataFrame, ts: pd.DataFrame, colors: dict[str, str]
) -> Figure:
    """Hit ratio per interval over time."""

    def value(rows: pd.DataFrame) -> pd.Series:
        reads = rows["reads"].astype(float).replace(0, np.nan)
        return 100 * rows["hits"].astype(float) / reads

    return _time_series_figure(
        scenario,
        runs,
        ts,
        colors,
        value,
        title="hit ratio over time",
        ylabel="hit ratio (% of reads per interval)",
        percent=True,
    )


def origin_load_figure(
    scenario: str, runs: pd.DataFrame, ts: pd.DataFrame, colors: dict[str, str]
) -> Figure:
    """Origin reads per second over time (per interval count / interval length)."""

    def value(rows: pd.DataFrame) -> pd.Series:
        width = (rows["t_end"] - rows["t"]).astype(float).replace(0, np.nan)
        return rows["origin_reads"].astype(float) / width

    return _time_series_figure(
        scenario,
        runs,
        ts,
        colors,
        value,
        title="origin (database) reads per second",
        ylabel="origin reads / s",
    )


# --- summary charts ---------------------------------------------------------------------------

LATENCY_POINTS = [("p50", "p50"), ("p99", "p99"), ("p999", "p99.9")]


def latency_figure(scenario: str, runs: pd.DataFrame, colors: dict[str, str]) -> Figure:
    """Read (and write) latency percentiles per strategy, on a log axis."""
    backends = backends_of(runs)
    ops = ["read"]
    if _stat(runs, "writes").mean > 0 and _stat(runs, "write_latency_p50").seeds:
        ops.append("write")
    fig = _new_figure(len(ops), len(backends), height=3.0)
    axes = fig.subplots(len(ops), len(backends), squeeze=False, sharey=True)
    n = len(colors)
    width = 0.7
    for r, op in enumerate(ops):
        for c, backend in enumerate(backends):
            ax = axes[r][c]
            part = runs[runs["backend"] == backend]
            for i, (strategy, color) in enumerate(colors.items()):
                mine = part[part["strategy"] == strategy]
                if mine.empty:
                    continue
                for j, (key, _) in enumerate(LATENCY_POINTS):
                    x = j - width / 2 + width * (i + 0.5) / n
                    stat = _stat(mine, f"{op}_latency_{key}")
                    _errorbar(ax, x, stat, color, strategy, marker="o", markersize=6)
            ax.set_xticks(range(len(LATENCY_POINTS)), [label for _, label in LATENCY_POINTS])
            ax.set_xlim(-0.5, len(LATENCY_POINTS) - 0.5)
            _log_seconds_axis(ax)
            ax.grid(True, axis="y", which="major", alpha=0.3)
            ax.set_title(f"{op} latency, {_backend_title(backend)}", fontsize="medium")
            if c == 0:
                ax.set_ylabel(f"{op} latency (log scale)")
            if r == len(ops) - 1:
                ax.set_xlabel("percentile (from the intended start)")
    _title(fig, scenario, "latency percentiles", _seeds_note(runs))
    _legend(fig, colors)
    return fig


TAIL_POINTS = [("p50", 0.5), ("p95", 0.05), ("p99", 0.01), ("p999", 0.001)]


def _histogram_tail(dist: pd.DataFrame | None, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """From (value, count) histogram rows (pooled over the runs given): each bucket's
    value and the share of observations at that value or above."""
    if dist is None or dist.empty:
        return np.array([]), np.array([])
    rows = dist[dist["metric"] == metric]
    counts = rows.groupby("value")["count"].sum().sort_index()
    counts = counts[counts > 0]
    total = float(counts.sum())
    if total <= 0:
        return np.array([]), np.array([])
    values = counts.index.to_numpy(dtype=float)
    at_or_above = (total - np.cumsum(counts.to_numpy(dtype=float)) + counts.to_numpy()) / total
    return values, at_or_above


def _percentile_tail(runs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The step approximation through p50, p95, p99, p99.9 and max (means over seeds)."""
    reads = max(_stat(runs, "reads").mean, 1.0)
    xs = [_stat(runs, f"read_latency_{key}").mean for key, _ in TAIL_POINTS]
    ys = [share for _, share in TAIL_POINTS]
    xs.append(_stat(runs, "read_latency_max").mean)
    ys.append(1.0 / reads)
    pairs = [(x, y) for x, y in zip(xs, ys, strict=True) if math.isfinite(x) and x > 0]
    return np.array([x for x, _ in pairs]), np.array([y for _, y in pairs])


def latency_tail_figure(
    scenario: str, runs: pd.DataFrame, colors: dict[str, str], dist: pd.DataFrame | None = None
) -> Figure:
    """Read latency distribution as a tail curve: the share of reads taking x or longer.

    From each run's latency histogram (`distributions.csv`, buckets within 0.4%),
    pooled over seeds. Runs without histograms fall back to a staircase through
    the summary's p50, p95, p99, p99.9 and max, drawn dashed with markers: at the
    p-th percentile's latency at most (100 - p)% of reads were slower; between
    those points the curve is not known.
    """
    backends = backends_of(runs)
    fig = _new_figure(1, len(backends), height=3.4)
    # shared axes: sim and real panels are compared by position
    axes = fig.subplots(1, len(backends), squeeze=False, sharex=True, sharey=True)[0]
    markers = strategy_markers(colors)
    approximated = measured = False
    floor = 1.0
    for ax, backend in zip(axes, backends, strict=True):
        part = runs[runs["backend"] == backend]
        for strategy, color in colors.items():
            mine = part[part["strategy"] == strategy]
            if mine.empty:
                continue
            mine_dist = None
            if dist is not None and not dist.empty:
                mine_dist = dist[(dist["strategy"] == strategy) & (dist["backend"] == backend)]
                # pool only if every run of this strategy has its histogram
                if mine_dist["seed"].nunique() < mine["seed"].nunique():
                    mine_dist = None
            xs, ys = _histogram_tail(mine_dist, "read_latency")
            if xs.size:
                measured = True
                lines = ax.step(xs, ys, where="post", color=color, linewidth=1.5, alpha=0.9)
            else:
                xs, ys = _percentile_tail(mine)
                if not xs.size:
                    continue
                approximated = True
                lines = ax.step(
                    xs, ys, where="post", color=color, linewidth=1.3, linestyle="--", alpha=0.9
                )
                lines += ax.plot(
                    xs, ys, linestyle="none", marker=markers[strategy], markersize=5, color=color
                )
            floor = min(floor, float(ys.min()))
            _tag(lines, strategy)
        _log_seconds_axis(ax, "x")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{100 * v:g}%"))
        ax.grid(True, which="major", alpha=0.3)
        ax.set_title(_backend_title(backend), fontsize="medium")
        ax.set_xlabel("read latency x (log scale)")
    axes[0].set_ylim(floor / 2, 1.2)
    axes[0].set_ylabel("share of reads taking x or longer\n(log scale)")
    seeds = runs["seed"].nunique()
    note = f"pooled over {seeds} seeds" if seeds > 1 else "1 seed"
    caveat = ""
    if measured:
        caveat = (
            "Solid: from each run's latency histogram (buckets within 0.4%); the lowest "
            "point of a curve is its slowest read."
        )
    if approximated:
        caveat += (
            " Dashed: no histogram recorded, so a staircase through p50, p95, p99, p99.9 and "
            "max only (markers); the curve between them is not known."
        )
    _title(fig, scenario, "read latency distribution (tail)", note, caveat.strip())
    extra: list[Artist] = []
    if measured and approximated:
        extra = [
            Line2D([], [], color="black", label="histogram"),
            Line2D(
                [], [], color="black", linestyle="--", marker="o", label="5 percentiles\n(approx.)"
            ),
        ]
    _legend(fig, colors, extra, lines=True, marked=approximated)
    return fig


def _bin_middle(lo: float, hi: float) -> float:
    """Where to draw a [lo, hi) bin on a log axis."""
    if lo <= 0:
        return hi / 2
    if not math.isfinite(hi):
        return lo * 2
    return math.sqrt(lo * hi)


MIN_CURVE_READS = 20


def freshness_figure(
    scenario: str, runs: pd.DataFrame, curves: pd.DataFrame, colors: dict[str, str]
) -> Figure:
    """P(a read is fresh | time since the key's last acknowledged write), per strategy.

    From each run's `staleness_curve.csv` (reads of keys written at least once),
    pooled over seeds; bins with fewer than MIN_CURVE_READS reads are left out.
    """
    backends = backends_of(runs)
    fig = _new_figure(1, len(backends), height=3.4)
    axes = fig.subplots(1, len(backends), squeeze=False, sharex=True, sharey=True)[0]
    markers = strategy_markers(colors)
    low = 100.0
    for ax, backend in zip(axes, backends, strict=True):
        part = curves[curves["backend"] == backend]
        for strategy, color in colors.items():
            mine = part[part["strategy"] == strategy]
            if mine.empty:
                continue
            pooled = mine.groupby(["since_lo", "since_hi"], sort=True)[
                ["reads", "stale_reads"]
            ].sum()
            pooled = pooled[pooled["reads"] >= MIN_CURVE_READS]
            if pooled.empty:
                continue
            x = [_bin_middle(float(lo), float(hi)) for lo, hi in pooled.index]
            y = 100 * (1 - pooled["stale_reads"] / pooled["reads"])
            low = min(low, float(y.min()))
            lines = ax.plot(
                x, y, color=color, marker=markers[strategy], markersize=4, linewidth=1.4, alpha=0.9
            )
            _tag(lines, strategy)
        _log_seconds_axis(ax, "x")
        ax.grid(True, which="major", alpha=0.3)
        ax.set_title(_backend_title(backend), fontsize="medium")
        ax.set_xlabel("time since the key's last write (log scale)")
    bottom = max(0.0, math.floor((low - 5) / 10) * 10)
    axes[0].set_ylim(bottom, 100 + (100 - bottom) * 0.03)
    _percent_axis(axes[0])
    axes[0].set_ylabel("reads that were fresh (%)")
    seeds = runs["seed"].nunique()
    _title(
        fig,
        scenario,
        "P(read is fresh | time since the key's last write)",
        f"pooled over {seeds} seeds" if seeds > 1 else "1 seed",
        "Reads of keys written at least once, by how long before the read the key's "
        f"latest write was acknowledged; points with fewer than {MIN_CURVE_READS} reads "
        "are left out.",
    )
    _legend(fig, colors, lines=True)
    return fig


def _bar(
    ax: Axes, x: float, width: float, stat: _Stat, color: str, strategy: str, *, hatch: str = ""
) -> None:
    if not math.isfinite(stat.mean):
        return
    yerr = None
    if stat.seeds > 1:
        yerr = [[stat.mean - stat.low], [stat.high - stat.mean]]
    bars = ax.bar(
        [x],
        [stat.mean],
        width=width,
        color=color,
        edgecolor="black" if hatch else color,
        hatch=hatch or None,
        yerr=yerr,
        capsize=3,
        error_kw={"ecolor": "black", "elinewidth": 1},
    )
    _tag(bars.patches, strategy)


def _strategy_axis(ax: Axes, names: Sequence[str]) -> None:
    ax.set_xticks(
        range(len(names)),
        list(names),
        rotation=20 if len(names) <= 4 else 35,
        ha="right",
        rotation_mode="anchor",
        fontsize="medium" if len(names) <= 4 else "small",
    )
    ax.set_xlim(-0.6, len(names) - 0.4)


def _no_data(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="dimgray")
    ax.set_yticks([])


def staleness_figure(scenario: str, runs: pd.DataFrame, colors: dict[str, str]) -> Figure:
    """Stale-read ratio, and the staleness age p50/p99 of the stale reads."""
    backends = backends_of(runs)
    names = list(colors)
    fig = _new_figure(2, len(backends), height=2.9)
    axes = fig.subplots(2, len(backends), squeeze=False, sharey="row")
    for c, backend in enumerate(backends):
        part = runs[runs["backend"] == backend]
        top, bottom = axes[0][c], axes[1][c]
        for i, strategy in enumerate(names):
            mine = part[part["strategy"] == strategy]
            if mine.empty:
                continue
            ratio = _stat(mine, "stale_read_ratio", lambda v: 100 * v)
            _bar(top, i, 0.6, ratio, colors[strategy], strategy)
            if math.isfinite(ratio.mean):
                top.annotate(
                    _pct_label(ratio.mean),
                    (i, ratio.high if math.isfinite(ratio.high) else ratio.mean),
                    textcoords="offset points",
                    xytext=(0, 3),
                    ha="center",
                    fontsize="small",
                )
            p50 = _stat(mine, "staleness_age_p50")
            p99 = _stat(mine, "staleness_age_p99")
            if not math.isfinite(p50.mean) and not math.isfinite(p99.mean):
                bottom.annotate(
                    "no stale\nreads",
                    (i, 0.02),
                    xycoords=("data", "axes fraction"),
                    ha="center",
                    fontsize="small",
                    color="dimgray",
                )
                continue
            _errorbar(bottom, i - 0.12, p50, colors[strategy], strategy, marker="o", markersize=6)
            _errorbar(bottom, i + 0.12, p99, colors[strategy], strategy, marker="^", markersize=7)
        top.set_ylim(bottom=0, top=max(top.get_ylim()[1] * 1.15, 1.0))
        _percent_axis(top)
        top.set_title(f"stale reads, {_backend_title(backend)}", fontsize="medium")
        _strategy_axis(top, names)
        top.grid(True, axis="y", alpha=0.3)
        _log_seconds_axis(bottom)
        if not any(line.get_label() in colors for line in bottom.lines):
            _no_data(bottom, "no stale reads in any run")
        bottom.set_title("age of stale reads (since the newer write's ack)", fontsize="medium")
        _strategy_axis(bottom, names)
        bottom.grid(True, axis="y", which="major", alpha=0.3)
        if c == 0:
            top.set_ylabel("stale reads (% of reads)")
            bottom.set_ylabel("staleness age (log scale)")
    _title(fig, scenario, "staleness", _seeds_note(runs))
    marks = [
        Line2D([], [], color="black", marker="o", linestyle="none", label="age p50"),
        Line2D([], [], color="black", marker="^", linestyle="none", label="age p99"),
    ]
    _legend(fig, colors, marks)
    return fig


@dataclass(frozen=True)
class _Metric:
    column: str
    label: str
    unit: str
    transform: Callable[[float], float]
    kind: str = "number"  # number | percent | count
    only_if_nonzero: bool = False  # left out when zero (or undefined) in every run


def _per_second(runs: pd.DataFrame) -> pd.DataFrame:
    out = runs.copy()
    if {"measured_time", "origin_reads"} <= set(out.columns):
        measured = pd.to_numeric(out["measured_time"], errors="coerce")
        origin = pd.to_numeric(out["origin_reads"], errors="coerce")
        out["origin_reads_per_s"] = origin / measured.where(measured > 0)
    return out


KEY_METRICS = [
    _Metric("hit_ratio", "hit ratio", "% of reads", lambda v: 100 * v, "percent"),
    _Metric("stale_read_ratio", "stale reads", "% of reads", lambda v: 100 * v, "percent"),
    _Metric("read_latency_p99", "read latency p99", "ms", lambda v: 1000 * v),
    _Metric("write_latency_p99", "write latency p99", "ms", lambda v: 1000 * v),
    _Metric("origin_reads_per_s", "origin reads per second", "reads/s (mean)", float),
    _Metric("lost_writes", "lost writes", "writes", float, "count"),
    _Metric("errors", "failed requests", "requests", float, "count", only_if_nonzero=True),
    # only in scenarios with faults (absent or null elsewhere, and then left out)
    _Metric("recovery_time", "recovery after the fault", "s (hit ratio back to 90%)", float),
    _Metric("fault_origin_peak_per_s", "origin peak during the fault", "reads/s", float),
]


def _shown(values: pd.Series, only_if_nonzero: bool) -> bool:
    finite = values[np.isfinite(values)]
    return bool(len(finite)) and (not only_if_nonzero or bool((finite != 0).any()))


# meaningless without writes (a read-only scenario), so left out of its figures
WRITE_METRICS = {"stale_read_ratio", "write_latency_p99", "lost_writes"}


def _short(value: float, kind: str) -> str:
    if kind == "percent":
        return _pct_label(value)
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def comparison_figure(scenario: str, runs: pd.DataFrame, colors: dict[str, str]) -> Figure:
    """Key metrics side by side, one panel each; backends as adjacent bars."""
    runs = _per_second(runs)
    backends = backends_of(runs)
    names = list(colors)
    writes = _stat(runs, "writes").most > 0
    metrics = [
        m
        for m in KEY_METRICS
        if m.column in runs.columns
        and (writes or m.column not in WRITE_METRICS)
        and _shown(pd.to_numeric(runs[m.column], errors="coerce"), m.only_if_nonzero)
    ]
    cols = 3
    rows = math.ceil(len(metrics) / cols)
    fig = _new_figure(rows, cols, width=3.6, height=2.8)
    axes = fig.subplots(rows, cols, squeeze=False)
    hatches = {
        b: ("" if i == 0 else ["//", "..", "xx", "\\\\"][(i - 1) % 4])
        for i, b in enumerate(backends)
    }
    width = 0.75 / len(backends)
    for k, metric in enumerate(metrics):
        ax = axes[k // cols][k % cols]
        for i, strategy in enumerate(names):
            for j, backend in enumerate(backends):
                mine = runs[(runs["strategy"] == strategy) & (runs["backend"] == backend)]
                if mine.empty:
                    continue
                x = i - 0.375 + width * (j + 0.5)
                stat = _stat(mine, metric.column, metric.transform)
                _bar(ax, x, width * 0.95, stat, colors[strategy], strategy, hatch=hatches[backend])
                if math.isfinite(stat.mean):
                    ax.annotate(
                        _short(stat.mean, metric.kind),
                        (x, stat.high if math.isfinite(stat.high) else stat.mean),
                        textcoords="offset points",
                        xytext=(0, 2),
                        ha="center",
                        fontsize="x-small",
                    )
        ax.set_title(metric.label, fontsize="medium")
        ax.set_ylabel(metric.unit)
        top = max(ax.get_ylim()[1] * 1.15, 1.0)
        ax.set_ylim(bottom=0, top=min(top, 108.0) if metric.kind == "percent" else top)
        if metric.kind == "percent":
            _percent_axis(ax)
        if metric.kind == "count":
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        _strategy_axis(ax, names)
        ax.grid(True, axis="y", alpha=0.3)
    for k in range(len(metrics), rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    _title(fig, scenario, "key metrics per strategy", _seeds_note(runs))
    extra: list[Artist] = []
    if len(backends) > 1:
        for backend in backends:
            extra.append(
                Patch(
                    facecolor="white",
                    edgecolor="black",
                    hatch=hatches[backend] or None,
                    label=_backend_title(backend),
                )
            )
    _legend(fig, colors, extra)
    return fig


# --- writing ----------------------------------------------------------------------------------

TITLES = {
    "comparison": "key metrics per strategy",
    "hit_ratio": "hit ratio over time",
    "latency": "latency percentiles",
    "latency_tail": "read latency distribution (tail)",
    "staleness": "stale reads and their age",
    "freshness": "P(fresh | time since the last write)",
    "origin_load": "origin reads per second over time",
}


def scenario_figures(
    runs: pd.DataFrame,
    ts: pd.DataFrame | None,
    dist: pd.DataFrame | None = None,
    curves: pd.DataFrame | None = None,
) -> dict[str, Figure]:
    """Every figure for one scenario's runs, by name. `ts`, `dist` and `curves` are the
    runs' stacked timeseries, histograms and staleness curves (`lab.results` loaders);
    the figures that need one are left out when it is missing."""
    scenario = str(runs["scenario"].iloc[0])
    colors = strategy_colors(str(s) for s in runs["strategy"])
    if is_sweep(runs):  # the other figures would average over the sweep's cells
        return sweep_figures(scenario, runs, colors)
    out: dict[str, Figure] = {"comparison": comparison_figure(scenario, runs, colors)}
    if ts is not None and not ts.empty and {"t", "t_end", "reads", "hits"} <= set(ts.columns):
        ts = _trim(ts)
        out["hit_ratio"] = hit_ratio_figure(scenario, runs, ts, colors)
    out["latency"] = latency_figure(scenario, runs, colors)
    out["latency_tail"] = latency_tail_figure(scenario, runs, colors, dist)
    if _stat(runs, "writes").most > 0:  # no writes, no staleness
        out["staleness"] = staleness_figure(scenario, runs, colors)
        if curves is not None and not curves.empty and "since_lo" in curves.columns:
            out["freshness"] = freshness_figure(scenario, runs, curves, colors)
    if ts is not None and not ts.empty and "origin_reads" in ts.columns:
        out["origin_load"] = origin_load_figure(scenario, runs, ts, colors)
    return out


def save_figure(fig: Figure, path: Path, fmt: str) -> Path:
    """Write one figure atomically (temporary file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    metadata: dict[str, str | None] = {"Date": None} if fmt == "svg" else {}
    try:
        with matplotlib.rc_context({"svg.hashsalt": "cachelab"}):
            fig.savefig(tmp, format=fmt, dpi=DPI, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def lay_out(fig: Figure) -> None:
    """Place the figure's parts once (its constrained layout), then fix them: every format
    is then written with one drawing each. Left to `savefig`, each save draws the figure
    twice, once without output to lay it out (a quarter of the drawing time) and once to
    write it; the files are byte-identical either way."""
    engine = fig.get_layout_engine()
    if engine is None:
        return
    engine.execute(fig)
    # None, not "none": a placeholder engine would still have savefig draw twice
    with matplotlib.rc_context(
        {"figure.autolayout": False, "figure.constrained_layout.use": False}
    ):
        fig.set_layout_engine(None)


def figures_dir(out_dir: str | Path, scenario: str) -> Path:
    """Where a scenario's figures go: `<out_dir>/<scenario>/figures/`."""
    return Path(out_dir) / scenario / "figures"


def _write_scenario(runs: pd.DataFrame, out_dir: Path, formats: Sequence[str]) -> list[FigureFile]:
    """Draw and write one scenario's figures (run in a worker process when parallel)."""
    from lab.results import load_distributions, load_staleness_curves, load_timeseries

    scenario = str(runs["scenario"].iloc[0])
    paths = [str(p) for p in runs["path"]] if "path" in runs.columns else []
    folder = figures_dir(out_dir, scenario)
    key = stamp.inputs_key(paths, formats)
    drawn = stamp.unchanged(folder, key, formats) if paths else None
    if drawn is not None:  # the same inputs: the figures there are these
        return [
            FigureFile(scenario, n, t, {f: folder / f"{n}.{f}" for f in formats}) for n, t in drawn
        ]
    ts = load_timeseries(*paths) if paths else None
    dist = load_distributions(*paths) if paths else None
    curves = load_staleness_curves(*paths) if paths else None
    figures = scenario_figures(runs, ts, dist, curves)
    files: list[FigureFile] = []
    for name, fig in figures.items():
        lay_out(fig)
        by_format = {fmt: save_figure(fig, folder / f"{name}.{fmt}", fmt) for fmt in formats}
        files.append(FigureFile(scenario, name, TITLES.get(name) or sweep_title(name), by_format))
    for name in set(TITLES) | set(figures):  # no file left from other inputs or formats
        for fmt in FORMATS:
            if name not in figures or fmt not in formats:
                (folder / f"{name}.{fmt}").unlink(missing_ok=True)
    if paths:
        stamp.record(folder, key, [(f.name, f.title) for f in files])
    return files


def _already_drawn(
    runs: pd.DataFrame, out_dir: Path, formats: Sequence[str]
) -> list[FigureFile] | None:
    """The figures of `runs`' scenario when they were drawn from these very runs."""
    if "path" not in runs.columns:
        return None
    scenario = str(runs["scenario"].iloc[0])
    folder = figures_dir(out_dir, scenario)
    key = stamp.inputs_key([str(p) for p in runs["path"]], formats)
    drawn = stamp.unchanged(folder, key, formats)
    if drawn is None:
        return None
    return [FigureFile(scenario, n, t, {f: folder / f"{n}.{f}" for f in formats}) for n, t in drawn]


def write_figures(
    frame: pd.DataFrame,
    out_dir: str | Path,
    formats: Sequence[str] = FORMATS,
    *,
    jobs: int | None = None,
) -> dict[str, list[FigureFile]]:
    """Write every scenario's figures under `<out_dir>/<scenario>/figures/`.

    `frame` is a `load_all` table; each run's timeseries, histograms and
    staleness curve are read through the `lab.results` loaders. Returns the
    figures written, by scenario, in reading order. Figure files of ours that
    this call did not produce (a figure whose data is no longer there) are
    removed. Scenarios are drawn in `jobs` worker processes (default: one per
    core, at most 4, from four scenarios up; 1 draws them in this process).
    """
    if frame.empty:
        return {}
    groups = [
        (str(name), runs.reset_index(drop=True))
        for name, runs in frame.groupby("scenario", sort=True)
    ]
    # figures already drawn from these runs (by `bench`'s workers as each scenario
    # finished) are kept here: workers are started only for what is left to draw
    drawn = {name: _already_drawn(runs, Path(out_dir), formats) for name, runs in groups}
    todo = [(name, runs) for name, runs in groups if drawn[name] is None]
    if jobs is None:  # starting workers costs a few seconds: worth it for many scenarios
        jobs = min(os.cpu_count() or 1, 4) if len(todo) >= 4 else 1
    workers = min(jobs, len(todo))
    if workers <= 1:
        return {
            name: drawn[name] or _write_scenario(runs, Path(out_dir), formats)
            for name, runs in groups
        }
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    # forkserver: workers forked from a clean process, never from this one, which may
    # hold threads (a progress bar's monitor) and their locks
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["lab.report.figures"])
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {
                name: pool.submit(_write_scenario, runs, Path(out_dir), tuple(formats))
                for name, runs in todo
            }
            return {name: drawn[name] or futures[name].result() for name, _ in groups}
    except (OSError, BrokenProcessPool):  # no worker processes here: draw them in this one
        return {name: _write_scenario(runs, Path(out_dir), formats) for name, runs in groups}


def draw_scenario(results: str, scenario: str, formats: Sequence[str] = FORMATS) -> None:
    """Draw one finished scenario's figures under `results/<scenario>/figures/` (in a
    spare worker while other cells still run): `write_figures` later finds them drawn
    from the same inputs and keeps them."""
    from lab.results import load_all

    runs = load_all(Path(results) / scenario)
    if not runs.empty:
        _write_scenario(runs.reset_index(drop=True), Path(results), tuple(formats))
