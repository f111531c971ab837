"""The fidelity table and figure, and their section in REPORT.md.

Everything is written atomically (a temporary file in the same folder, then a
rename): an interrupted `cachelab fidelity` leaves the previous files whole.
The REPORT.md section sits between two marker comments and replaces the one
an earlier run wrote; the rest of the file is kept as it was.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

BEGIN = "<!-- cachelab fidelity: begin -->"
END = "<!-- cachelab fidelity: end -->"
HIT_POINTS = 1.0
"""Agreement asked of hit ratios (points)."""
STALE_POINTS = 0.5
"""Agreement asked of stale-read ratios (points)."""
LAG_WARN_MS = 5.0
"""A real run whose load generator lagged more (p99) than this is marked: its timing,
so its races and in-flight fills, were the busy machine's, not the workload's."""
QUEUED_MS = 20.0
"""A real run whose median read took this much longer than the simulator's is marked
'queued': its requests waited in the load generator's own process (a CPU-starved
client: every read of a hot key misses until a fill that waits too lands, and a
backlog of origin reads builds), so it did not run the cell's workload."""


def frame(records: Sequence[dict[str, object]]) -> pd.DataFrame:
    return pd.DataFrame.from_records(list(records))


def _pct(x: object) -> str:
    return "-" if x is None or x != x else f"{float(x) * 100:.2f}%"  # type: ignore[arg-type]


def _pts(x: object) -> str:
    return "-" if x is None or x != x else f"{float(x):+.2f}"  # type: ignore[arg-type]


def _ms(x: object) -> str:
    if x is None or x != x:
        return "-"
    ms = float(x) * 1000  # type: ignore[arg-type]
    return f"{ms:.1f} ms" + (" (behind)" if ms > LAG_WARN_MS else "")


def queued(rows: pd.DataFrame) -> pd.Series:
    """Rows whose real run queued in its own client (`QUEUED_MS`)."""
    if "read_p50_real" not in rows:
        return pd.Series(False, index=rows.index)
    extra = (rows["read_p50_real"] - rows["read_p50_sim"]) * 1000
    return extra.fillna(0) > QUEUED_MS


def _p50s(r: Mapping[Hashable, Any]) -> str:
    sim, real = r.get("read_p50_sim"), r.get("read_p50_real")
    if sim is None or real is None or sim != sim or real != real:
        return "-"
    text = f"{float(sim) * 1000:.1f} / {float(real) * 1000:.1f} ms"
    return text + (" (queued)" if (float(real) - float(sim)) * 1000 > QUEUED_MS else "")


def table(rows: pd.DataFrame) -> str:
    """The markdown table, one line per cell and server."""
    lines = [
        "| cell | server | hit sim | hit real | diff (pt) | stale sim | stale real "
        "| diff (pt) | keys sim | keys real | errors sim/real | cache errors real "
        "| driver lag p99 | read p50 sim / real |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows.to_dict("records"):
        lines.append(
            f"| {r['cell']} | {r['server']} | {_pct(r['hit_sim'])} | {_pct(r['hit_real'])} "
            f"| {_pts(r['hit_diff_points'])} | {_pct(r['stale_sim'])} | {_pct(r['stale_real'])} "
            f"| {_pts(r['stale_diff_points'])} | {int(r['keys_sim']):,} | {int(r['keys_real']):,} "
            f"| {int(r['errors_sim'])}/{int(r['errors_real'])} | {int(r['cache_errors_real'])} "
            f"| {_ms(r.get('driver_lag_p99_real'))} | {_p50s(r)} |"
        )
    return "\n".join(lines)


def verdict(rows: pd.DataFrame) -> str:
    """One paragraph: the largest differences and whether they are within the targets."""
    if rows.empty:
        return "No cell ran."
    hit = rows["hit_diff_points"].abs().max()
    stale = rows["stale_diff_points"].abs().max()
    errors = int(rows["errors_real"].sum() + rows["errors_sim"].sum())
    misses = rows[
        (rows["hit_diff_points"].abs() > HIT_POINTS)
        | (rows["stale_diff_points"].abs() > STALE_POINTS)
    ]
    keys = (rows["keys_real"] - rows["keys_sim"]).abs() / rows["keys_sim"].clip(lower=1)
    out = (
        f"{len(rows)} cell(s): hit ratios within {hit:.2f} point(s) (target {HIT_POINTS}), "
        f"stale-read ratios within {stale:.2f} point(s) (target {STALE_POINTS}), keys held "
        f"within {keys.max() * 100:.1f}%, {errors} error(s) in fault-free runs."
    )
    if not misses.empty:
        names = [f"{c} ({s})" for c, s in zip(misses["cell"], misses["server"], strict=True)]
        out += f" Outside the targets: {', '.join(names)}."
        late = queued(misses)
        if late.any():
            out += (
                f" Of those, {int(late.sum())} queued in the real run's own client (median"
                f" read over {QUEUED_MS:.0f} ms beyond the simulator's): not the cell's workload."
            )
    return out


def _lat(x: object) -> str:
    return "-" if x is None or x != x else f"{float(x) * 1000:.1f}"  # type: ignore[arg-type]


def twin_table(rows: pd.DataFrame) -> str:
    """Hit and stale-read ratios of the simulator with the scenario's latencies, of its
    latency-matched twin and of the real run, and the latencies the twin was given."""
    lines = [
        "| cell | server | hit sim | hit twin | hit real | real - twin (pt) | stale sim "
        "| stale twin | stale real | real - twin (pt) | cache op p50/p99 real (ms) "
        "| origin read p50/p99 real (ms) | read p99 sim / twin / real (ms) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows.to_dict("records"):
        lines.append(
            f"| {r['cell']} | {r['server']} | {_pct(r['hit_sim'])} | {_pct(r['hit_twin'])} "
            f"| {_pct(r['hit_real'])} | {_pts(r['hit_twin_diff_points'])} "
            f"| {_pct(r['stale_sim'])} | {_pct(r['stale_twin'])} | {_pct(r['stale_real'])} "
            f"| {_pts(r['stale_twin_diff_points'])} "
            f"| {_lat(r.get('cache_op_p50_real'))} / {_lat(r.get('cache_op_p99_real'))} "
            f"| {_lat(r.get('origin_read_p50_real'))} / {_lat(r.get('origin_read_p99_real'))} "
            f"| {_lat(r.get('read_p99_sim'))} / {_lat(r.get('read_p99_twin'))} "
            f"/ {_lat(r.get('read_p99_real'))} |"
        )
    return "\n".join(lines)


def twin_verdict(rows: pd.DataFrame) -> str:
    """How many pairs are within the targets against the simulator with the scenario's
    latencies and against the latency-matched twin, and the median differences."""
    if rows.empty or "hit_twin" not in rows:
        return ""

    def within(hit: str, stale: str) -> int:
        ok = (rows[hit].abs() <= HIT_POINTS) & (rows[stale].abs() <= STALE_POINTS)
        return int(ok.sum())

    n = len(rows)
    return (
        f"Latency-matched twin: {within('hit_twin_diff_points', 'stale_twin_diff_points')} "
        f"of {n} pair(s) within the targets (with the scenario's latencies: "
        f"{within('hit_diff_points', 'stale_diff_points')}); real - twin median "
        f"{rows['hit_twin_diff_points'].median():+.2f} point(s) hit, "
        f"{rows['stale_twin_diff_points'].median():+.2f} stale (real - sim: "
        f"{rows['hit_diff_points'].median():+.2f}, {rows['stale_diff_points'].median():+.2f})."
    )


def section(rows: pd.DataFrame, figure: str | None) -> str:
    """The REPORT.md section (links relative to REPORT.md's folder)."""
    parts = [
        "## Fidelity: simulator vs real servers",
        "",
        "The same cells on the simulator and on real servers (`cachelab fidelity`; cells: "
        "cache-aside, zipf 0.99 over 10,000 keys, 1,500 requests/s, no faults). Hit and "
        "stale ratios over the measured window; keys held summed over nodes at the end. "
        "'behind': the real run's load generator lagged (p99 over 5 ms), as it does on a "
        "busy machine; with writes, its hit ratio then drops (every read of an "
        "invalidated hot key misses until the slower fill lands).",
        "",
        verdict(rows),
        "",
        table(rows),
    ]
    if not rows.empty and "hit_twin" in rows:
        parts += [
            "",
            "### The latency-matched twin",
            "",
            "The simulator again with the latencies the real run measured: each cache "
            "operation takes a time drawn from the real run's cache-operation times, the "
            "origin calls lognormals through the real ones' p50 and p99 "
            "(`lab/fidelity/matched.py`; with `--twin stall`, the real client's pauses "
            "fitted to its cache-operation times, `lab/fidelity/stalls.py`).",
            "",
            twin_verdict(rows),
            "",
            twin_table(rows),
        ]
    if not rows.empty and "seeds" in rows:
        parts += ["", f"Each row pools {int(rows['seeds'].max())} seeds (counts summed)."]
    if not rows.empty and "sim_draws" in rows:
        spread = rows["stale_sim_draw_sd"].median() * 100
        parts += [
            "",
            f"The simulator's side of each row pools {int(rows['sim_draws'].max())} draws of "
            "its own randomness (cache network and service times, eviction sampling) on the "
            "real run's request stream and origin latencies (`--sim-draws`); from one draw "
            f"to the next its stale-read ratio moved by {spread:.2f} point (median SD).",
        ]
    if figure:
        parts += ["", f"![sim vs real]({figure})"]
    return "\n".join(parts) + "\n"


def write_text(path: Path, text: str) -> None:
    """Atomically: a temporary file beside `path`, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def update_report(report: Path, text: str) -> None:
    """Put `text` between the markers in `report` (replacing an earlier section, or
    appended; the file is created if missing)."""
    old = report.read_text() if report.exists() else "# cachelab report\n"
    block = f"{BEGIN}\n{text}{END}\n"
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        new = head + block + tail
    else:
        new = old.rstrip("\n") + "\n\n" + block
    write_text(report, new)


def figure(rows: pd.DataFrame, path_stem: Path) -> list[Path]:
    """Sim vs real: hit ratio, stale-read ratio, keys held (one point per cell and server,
    the diagonal is agreement) and errors per cell. PNG and SVG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from lab.report.figures import lay_out, save_figure

    fig = Figure(figsize=(12, 9), layout="constrained")
    axes = fig.subplots(2, 2)
    panels = [
        ("hit ratio", "hit_sim", "hit_real", 100.0),
        ("stale-read ratio", "stale_sim", "stale_real", 100.0),
        ("keys held", "keys_sim", "keys_real", 1.0),
    ]
    for ax, (title, xs, ys, scale) in zip(axes.flat, panels, strict=False):
        for server, group in rows.groupby("server"):
            ax.scatter(group[xs] * scale, group[ys] * scale, label=str(server), alpha=0.8)
        lo = float(min(rows[xs].min(), rows[ys].min()) * scale)
        hi = float(max(rows[xs].max(), rows[ys].max()) * scale)
        ax.plot([lo, hi], [lo, hi], color="grey", linewidth=0.8)
        unit = " (%)" if scale == 100.0 else ""
        ax.set(title=title, xlabel=f"simulator{unit}", ylabel=f"real{unit}")
        ax.legend(fontsize="small")
    ax = axes.flat[3]
    labels = [f"{c} {s}" for c, s in zip(rows["cell"], rows["server"], strict=True)]
    rank = list(range(len(rows)))
    ax.barh([y - 0.2 for y in rank], rows["hit_diff_points"], height=0.4, label="hit ratio")
    ax.barh([y + 0.2 for y in rank], rows["stale_diff_points"], height=0.4, label="stale ratio")
    for x, style in ((HIT_POINTS, "--"), (STALE_POINTS, ":")):
        for sign in (-1, 1):
            ax.axvline(sign * x, color="grey", linestyle=style, linewidth=0.8)
    ax.set_yticks(rank, labels, fontsize=6)
    errors = int((rows["errors_real"] + rows["cache_errors_real"]).sum())
    ax.set(
        title=f"real - simulator (points); errors + cache errors on real: {errors}",
        xlabel="points (targets: hit +/-1, stale +/-0.5)",
    )
    ax.legend(fontsize="small")
    lay_out(fig)  # once for both formats
    return [save_figure(fig, path_stem.with_suffix(f".{fmt}"), fmt) for fmt in ("png", "svg")]
