"""Comparison tables: strategies x metrics per scenario, means over seeds."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import pandas as pd

from lab.core.units import format_duration
from lab.report.stats import mean_ci
from lab.report.sweeps import groups, is_sweep


class FigureLink(NamedTuple):
    """A figure as the markdown links it: caption and relative paths (POSIX style)."""

    title: str
    png: str
    svg: str | None = None  # None: drawn as PNG only


def _pct(x: float, half: float = math.nan) -> str:
    if x != x:
        return "-"
    if not half > 0:  # one seed (NaN), or seeds that agree exactly
        return f"{100 * x:.2f}%"
    digits = 1 if 100 * half >= 0.05 else 2
    return f"{100 * x:.{digits}f}% ± {100 * half:.{digits}f}"


def _int(x: float, half: float = math.nan) -> str:
    if x != x:
        return "-"
    return f"{x:,.0f} ± {half:,.0f}" if half > 0 else f"{x:,.0f}"


def _dur(x: float, half: float = math.nan) -> str:
    if not half > 0 or x != x:
        return format_duration(x)
    return f"{format_duration(x)} ± {format_duration(half)}"


Format = Callable[[float, float], str]
"""A mean and its 95% CI half-width (NaN with one seed) as table text."""

COLUMNS: list[tuple[str, str, Format]] = [
    ("hit_ratio", "hit ratio", _pct),
    ("stale_read_ratio", "stale reads", _pct),
    ("staleness_age_p99", "stale age p99", _dur),
    ("read_latency_p50", "read p50", _dur),
    ("read_latency_p99", "read p99", _dur),
    ("read_latency_p999", "read p99.9", _dur),
    ("write_latency_p99", "write p99", _dur),
    ("origin_reads", "origin reads", _int),
    ("origin_reads_peak_per_s", "origin peak/s", _int),
    ("lost_writes", "lost writes", _int),
    ("errors", "errors", _int),
]


def markdown_table(frame: pd.DataFrame) -> str:
    """One table for one scenario's runs: a row per strategy and backend (and sweep
    cell, first, when the runs are a sweep's): the mean over seeds, and with two
    seeds or more its 95% confidence interval (Student t), `84.3% ± 0.4`."""
    present = [c for c in COLUMNS if c[0] in frame.columns]
    swept = is_sweep(frame)
    keys = ["point", "strategy", "backend"] if swept else ["strategy", "backend"]
    header = [*(["cell"] if swept else []), "strategy", "backend", "seeds"]
    lines = [
        "| " + " | ".join([*header, *(c[1] for c in present)]) + " |",
        "|" + "---|" * (len(header) + len(present)),
    ]
    for key, runs in groups(frame, keys):
        cells = [*map(_cell, key), str(runs["seed"].nunique())]
        for name, _, fmt in present:
            stat = mean_ci(pd.to_numeric(runs[name], errors="coerce"))
            cells.append(fmt(stat.mean, stat.half) if stat.n else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(text: object) -> str:
    """Text that stays inside its table cell (a name may hold a '|')."""
    return str(text).replace("|", "\\|")


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def report(frame: pd.DataFrame, figures: Mapping[str, Sequence[FigureLink]] | None = None) -> str:
    """Markdown for every scenario in `frame`; with `figures`, each scenario's table is
    followed by its figures (`FigureLink`s: alt text, PNG path and any SVG path, relative
    to where the markdown is written)."""
    if frame.empty:
        return "No runs found.\n"
    parts = ["# cachelab report", ""]
    for scenario, runs in frame.groupby("scenario", sort=True):
        parts += [f"## {scenario}", "", markdown_table(runs), ""]
        for link in (figures or {}).get(str(scenario), []):
            svg = f" ([SVG]({link.svg}))" if link.svg else ""
            parts += [f"![{scenario}: {link.title}]({link.png})", f"*{link.title}*{svg}", ""]
    parts.append(
        "Means over seeds (± the half-width of the 95% confidence interval, Student t, with "
        "two seeds or more). Latencies from the intended start; stale = a newer version was "
        "acknowledged before the read began. See docs/architecture.md."
    )
    return "\n".join(parts) + "\n"
