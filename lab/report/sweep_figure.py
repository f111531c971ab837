"""A sweep's figure: each metric against the swept value, a line per strategy, the 95%
confidence band over seeds around it. With several swept paths there is one figure
per path, and the other paths' values tell the lines apart (line style)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

from lab.report.stats import mean_ci
from lab.report.sweeps import PARAMS, param_columns


@dataclass(frozen=True)
class Panel:
    column: str
    label: str
    scale: float = 1.0
    log: bool = False


PANELS = (
    Panel("hit_ratio", "hit ratio (%)", 100.0),
    Panel("stale_read_ratio", "stale reads (%)", 100.0),
    Panel("origin_reads", "origin reads"),
    Panel("read_latency_p99", "read p99 (ms)", 1000.0),
)
STYLES: list[Literal["-", "--", ":", "-."]] = ["-", "--", ":", "-."]


UNITS = {"ttl": "s", "duration": "s", "at": "s", "warmup": "s", "rate": "requests/s"}
"""The unit a swept value is held in (params are as validated: times in seconds)."""


def short_name(column: str) -> str:
    """`params.strategies.*.ttl` -> `ttl`."""
    return column.removeprefix(PARAMS).split(".")[-1]


def _xlabel(column: str) -> str:
    name = short_name(column)
    return f"{name} ({UNITS[name]})" if name in UNITS else name


def _positions(values: pd.Series) -> tuple[dict[object, float], bool, list[str] | None]:
    """Where each swept value goes on the x axis: itself when numeric (log scale when
    the values span more than 20x), else its rank with the value as the tick label."""
    distinct = list(dict.fromkeys(values.dropna()))
    try:
        numbers = {v: float(v) for v in distinct}
    except (TypeError, ValueError):
        labels = [str(v) for v in distinct]
        return {v: float(i) for i, v in enumerate(distinct)}, False, labels
    positive = [x for x in numbers.values() if x > 0]
    log = len(positive) == len(numbers) and max(positive) / min(positive) > 20
    return numbers, log, None


def sweep_figure(scenario: str, runs: pd.DataFrame, colors: dict[str, str], column: str) -> Figure:
    """Each metric of PANELS against the values of the swept `column`, per strategy."""
    panels = [p for p in PANELS if p.column in runs.columns and runs[p.column].notna().any()]
    fig = Figure(figsize=(4.2 * len(panels) + 2.4, 4.0), dpi=120, layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    where, log_x, labels = _positions(runs[column])
    others = [c for c in param_columns(runs) if c != column]
    combos = list(dict.fromkeys(tuple(row) for row in runs[others].astype(str).to_numpy()))
    styles = {combo: STYLES[i % len(STYLES)] for i, combo in enumerate(combos)}
    seeds = runs.groupby(["point", "strategy", "backend"])["seed"].nunique()
    for ax, panel in zip(axes, panels, strict=True):
        for (strategy, _backend, *combo), mine in runs.groupby(
            ["strategy", "backend", *others], sort=False
        ):
            _line(
                ax,
                mine,
                column,
                panel,
                where,
                colors.get(str(strategy), "black"),
                styles.get(tuple(str(c) for c in combo), "-"),
            )
        _axes(ax, panel, _xlabel(column), log_x, labels)
        if log_x:  # the swept values themselves as the ticks, written as numbers
            ticks = sorted(set(where.values()))
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks], rotation=30, ha="right")
            ax.xaxis.set_minor_formatter(NullFormatter())
    handles = [Line2D([], [], color=c, marker="o", label=s) for s, c in colors.items()]
    handles += [
        Line2D(
            [],
            [],
            color="black",
            linestyle=styles[combo],
            label=", ".join(f"{short_name(c)}={v}" for c, v in zip(others, combo, strict=True)),
        )
        for combo in combos
        if others
    ]
    fig.legend(handles=handles, loc="outside right upper", title="strategy", fontsize="small")
    low, high = int(seeds.min()), int(seeds.max())
    note = (
        "1 seed"
        if high <= 1
        else f"mean over {low if low == high else f'{low}-{high}'} seeds; bands: 95% confidence "
        "interval (Student t)"
    )
    fig.suptitle(f"{scenario}: metrics against {short_name(column)}\n{note}")
    return fig


def _line(
    ax: Axes,
    runs: pd.DataFrame,
    column: str,
    panel: Panel,
    where: dict[object, float],
    color: str,
    style: str,
) -> None:
    points = []
    for value, cell in runs.groupby(column, sort=False):
        ci = mean_ci(pd.to_numeric(cell[panel.column], errors="coerce") * panel.scale)
        if ci.n:
            points.append((where[value], ci.mean, max(ci.low, 0.0), ci.high))
    if not points:
        return
    x, mean, low, high = (np.array(v, dtype=float) for v in zip(*sorted(points), strict=True))
    ax.plot(x, mean, color=color, marker="o", markersize=4, linestyle=style, linewidth=1.4)
    if np.isfinite(high - low).any() and (high > low).any():
        ax.fill_between(x, low, high, color=color, alpha=0.18, linewidth=0)


def _axes(ax: Axes, panel: Panel, xlabel: str, log_x: bool, labels: list[str] | None) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(panel.label)
    ax.grid(True, alpha=0.3)
    if log_x:
        ax.set_xscale("log")
    if labels is not None:
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    if (
        panel.log
        and all(
            y > 0
            for line in ax.lines
            for y in np.asarray(line.get_ydata(), dtype=float)
            if math.isfinite(y)
        )
        and ax.lines
    ):
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)


def sweep_title(name: str) -> str:
    """The caption of `sweep` or `sweep-<path>`."""
    swept = name.removeprefix("sweep").removeprefix("-") or "the swept value"
    return f"each metric against {swept}, per strategy, with 95% confidence bands"


def sweep_figures(scenario: str, runs: pd.DataFrame, colors: dict[str, str]) -> dict[str, Figure]:
    """One figure per swept path: `sweep` for a single path, `sweep-<name>` for several."""
    columns = param_columns(runs)
    if len(columns) == 1:
        return {"sweep": sweep_figure(scenario, runs, colors, columns[0])}
    names = [short_name(c) for c in columns]
    if len(set(names)) < len(names):  # faults.0.at and faults.1.at
        names = [c.removeprefix(PARAMS).replace(".*", "").replace(".", "-") for c in columns]
    return {
        f"sweep-{n}": sweep_figure(scenario, runs, colors, c)
        for n, c in zip(names, columns, strict=True)
    }
