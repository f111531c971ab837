"""Trace statistics as a markdown table, a figure (PNG and SVG) and files, written as one
folder atomically (a temporary folder renamed into place)."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lab.trace.popularity import zipf_expected
from lab.trace.stats import TraceStats

FIGURE = "trace_stats"


def _count(n: int) -> str:
    return f"{n:,}"


def _bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.2f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _share(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.2f}%"


def stats_rows(stats: TraceStats) -> list[tuple[str, str]]:
    """(statistic, value) pairs, in the order the table shows them."""
    rows = [
        ("requests", _count(stats.requests)),
        (
            "reads / writes",
            f"{_share(stats.reads / stats.requests)} / {_share(stats.writes / stats.requests)}",
        ),
        ("unique keys", _count(stats.unique_keys)),
        (
            "one-hit wonders",
            f"{_share(stats.one_hit_ratio)} of keys ({_count(stats.one_hit_keys)})",
        ),
    ]
    if stats.has_size:
        rows.append(
            ("working set", f"{_bytes(stats.working_set_bytes)} (each key at its last size)")
        )
        rows.append(("bytes requested", _bytes(stats.request_bytes)))
    else:
        rows.append(("working set", "n/a (the trace has no sizes)"))
    if stats.has_time:
        rate = stats.requests / stats.span if stats.span > 0 else math.inf
        rows.append(("time span", f"{stats.span:,.3f} s ({rate:,.1f} requests/s)"))
    if stats.zipf is not None:
        z = stats.zipf
        rows.append(
            (
                "zipf s (MLE)",
                f"{z.s:.3f} (over the {_count(z.ranks)} keys with >= 10 requests: "
                f"{_share(z.share)} of requests)",
            )
        )
    else:
        rows.append(("zipf s (MLE)", "n/a (fewer than two keys with >= 10 requests)"))
    method = (
        "exact (Fenwick tree)"
        if stats.reuse.rate >= 1.0
        else f"SHARDS at rate {stats.reuse.rate:g} ({_count(stats.reuse.sampled)} requests)"
    )
    rows.append(("reuse distances", method))
    return rows


def stats_table(stats: TraceStats) -> str:
    """The statistics and the reuse-distance histogram as markdown tables."""
    lines = [f"## {stats.path} ({stats.format})", "", "| statistic | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in stats_rows(stats)]
    lines += [
        "",
        "Reuse (LRU stack) distance: distinct other keys since the key's previous request;",
        "the cumulative share through a-b is the hit ratio of an LRU cache of b+1 objects.",
        "",
        "| distance | requests | cumulative |",
        "|---|---:|---:|",
    ]
    for label, share, cumulative in stats.reuse.buckets():
        lines.append(f"| {label} | {_share(share)} | {_share(cumulative)} |")
    return "\n".join(lines) + "\n"


def reuse_frame(stats: TraceStats) -> pd.DataFrame:
    rows = stats.reuse.buckets()
    return pd.DataFrame(rows, columns=["distance", "share", "cumulative"])


def stats_figure(stats: TraceStats) -> Figure:
    """Rank-frequency with the Zipf fit; the reuse-distance histogram; the LRU miss-ratio
    curve it implies."""
    fig = Figure(figsize=(13.5, 3.8), layout="constrained")
    rank_ax, reuse_ax, mrc_ax = fig.subplots(1, 3)
    ranked = np.sort(stats.counts[stats.counts > 0])[::-1]
    ranks = np.arange(1, ranked.size + 1)
    # the curve is monotone: a few hundred log-spaced ranks draw it (and keep the SVG small)
    shown = np.unique(np.geomspace(1, max(ranked.size, 1), 400).astype(np.int64)) - 1
    rank_ax.loglog(ranks[shown], ranked[shown], ".", markersize=3, color="#1f77b4", label="trace")
    if stats.zipf is not None:
        fitted = zipf_expected(stats.zipf, float(ranked[: stats.zipf.ranks].sum()))
        line = shown[shown < stats.zipf.ranks]
        rank_ax.loglog(
            ranks[line],
            fitted[line],
            "-",
            color="#d62728",
            label=f"zipf s={stats.zipf.s:.2f}",
        )
    rank_ax.set(xlabel="key rank", ylabel="requests", title="Popularity")
    rank_ax.legend(frameon=False)

    rows = stats.reuse.buckets()
    labels = [label for label, _, _ in rows]
    reuse_ax.bar(range(len(rows)), [100 * share for _, share, _ in rows], color="#2ca02c")
    reuse_ax.set_xticks(range(len(rows)), labels, rotation=60, ha="right", fontsize=7)
    reuse_ax.set(ylabel="% of requests", title="Reuse distance (distinct keys)")

    sizes = np.unique(np.geomspace(1, max(stats.unique_keys, 1), 64).astype(np.int64))
    mrc_ax.semilogx(sizes, [stats.reuse.lru_miss_ratio(int(c)) for c in sizes], color="#9467bd")
    mrc_ax.set(xlabel="LRU cache size (objects)", ylabel="miss ratio", title="LRU miss ratio")
    mrc_ax.set_ylim(0, 1.02)
    note = "exact" if stats.reuse.rate >= 1.0 else f"SHARDS, rate {stats.reuse.rate:g}"
    fig.suptitle(f"{Path(stats.path).name}: {stats.requests:,} requests ({note})", fontsize=10)
    return fig


def write_stats(stats: TraceStats, out_dir: Path, *, figure: bool = True) -> list[Path]:
    """stats.md, stats.json, reuse.csv (and the figure) in `out_dir`, replacing it whole."""
    from lab.report.figures import FORMATS, lay_out, save_figure

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".tmp-{out_dir.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        (tmp / "stats.md").write_text(stats_table(stats))
        (tmp / "stats.json").write_text(json.dumps(stats.summary(), indent=2) + "\n")
        reuse_frame(stats).to_csv(tmp / "reuse.csv", index=False)
        if figure:
            fig = stats_figure(stats)
            lay_out(fig)  # once for every format
            for fmt in FORMATS:
                save_figure(fig, tmp / f"{FIGURE}.{fmt}", fmt)
        if out_dir.exists():
            old = out_dir.with_name(f".old-{out_dir.name}-{os.getpid()}")
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old)
        else:
            tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(out_dir.iterdir())
