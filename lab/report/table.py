"""Comparison tables: strategies x metrics per scenario, means over seeds."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import pandas as pd

from lab.core.units import format_duration


class FigureLink(NamedTuple):
    """A figure as the markdown links it: caption and relative paths (POSIX style)."""

    title: str
    png: str
    svg: str


def _pct(x: float) -> str:
    return "-" if x != x else f"{100 * x:.2f}%"


def _int(x: float) -> str:
    return "-" if x != x else f"{x:,.0f}"


def _dur(x: float) -> str:
    return format_duration(x)


COLUMNS: list[tuple[str, str, Callable[[float], str]]] = [
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
    cell, first, when the runs are a sweep's)."""
    present = [c for c in COLUMNS if c[0] in frame.columns]
    numeric = frame[[c[0] for c in present]].apply(pd.to_numeric, errors="coerce")
    swept = "point" in frame.columns and bool(frame["point"].notna().any())
    keys = ["point", "strategy", "backend"] if swept else ["strategy", "backend"]
    grouped = pd.concat([frame[[*keys, "seed"]].fillna(""), numeric], axis=1)
    order = {name: list(dict.fromkeys(grouped[name])) for name in keys}
    means = grouped.groupby(keys, sort=False).mean(numeric_only=True)
    seeds = grouped.groupby(keys, sort=False)["seed"].nunique()
    header = [
        *(["cell"] if swept else []),
        "strategy",
        "backend",
        "seeds",
        *(c[1] for c in present),
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, row in sorted(
        means.iterrows(),
        key=lambda item: [
            order[k].index(v) if k != "backend" else v for k, v in zip(keys, item[0], strict=False)
        ],
    ):
        cells = [*map(_cell, key), str(seeds[key])]
        for name, _, fmt in present:
            value = row[name]
            cells.append(fmt(float(value)) if not _missing(value) else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(text: object) -> str:
    """Text that stays inside its table cell (a name may hold a '|')."""
    return str(text).replace("|", "\\|")


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def report(frame: pd.DataFrame, figures: Mapping[str, Sequence[FigureLink]] | None = None) -> str:
    """Markdown for every scenario in `frame`; with `figures`, each scenario's table is
    followed by its figures (`FigureLink`s: alt text, PNG path and SVG path, relative to
    where the markdown is written)."""
    if frame.empty:
        return "No runs found.\n"
    parts = ["# cachelab report", ""]
    for scenario, runs in frame.groupby("scenario", sort=True):
        parts += [f"## {scenario}", "", markdown_table(runs), ""]
        for link in (figures or {}).get(str(scenario), []):
            parts += [
                f"![{scenario}: {link.title}]({link.png})",
                f"*{link.title}* ([SVG]({link.svg}))",
                "",
            ]
    parts.append(
        "Means over seeds. Latencies from the intended start; stale = a newer version was "
        "acknowledged before the read began. See docs/architecture.md."
    )
    return "\n".join(parts) + "\n"
