"""`cachelab fidelity`: the sim-vs-real grid, its table and figure in RESULTS/fidelity/
and its section in RESULTS/REPORT.md. Kept out of lab/cli.py, which only registers it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DEFAULT_RESULTS = Path("results")


def add_fidelity_parser(sub: Any) -> None:
    """Register `fidelity` on the top-level subparsers."""
    p = sub.add_parser(
        "fidelity", help="the simulator vs real servers on a grid of cells: table and figure"
    )
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    p.add_argument("--quick", action="store_true", help="the test suite's cut of the grid")
    p.add_argument(
        "--server",
        choices=["all", "redis", "valkey"],
        default="all",
        help="which real servers (default: every binary found)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--sample",
        type=int,
        default=None,
        metavar="N",
        help="N cells of the full grid in a shuffled order (the full grid takes ~75 min "
        "on 2 busy cores); the table is rewritten after every cell",
    )
    p.add_argument(
        "--cells",
        action="append",
        default=[],
        metavar="TEXT",
        help="only the cells whose name contains TEXT (repeatable: every TEXT), e.g. "
        "--cells w10 for the cells with writes; with --sample N: N of those cells",
    )
    p.add_argument(
        "--matched",
        action="store_true",
        help="also run the latency-matched simulator twin: the simulator again with the "
        "cache-operation and origin latencies the real run measured (docs/fidelity-grid.md)",
    )
    p.add_argument(
        "--twin",
        choices=["lag", "stall"],
        default="lag",
        help="the twin's model (implies --matched): lag, each cache operation takes a "
        "time drawn from the real ones; stall, the real client's pauses fitted to them, "
        "shared by every cache and origin call (experimental)",
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        metavar="N",
        help="run every pair on N seeds (--seed, --seed+1, ...) and judge the pooled "
        "ratios: one 12 s run's stale-read ratio varies by ~0.3 point from its races alone",
    )
    p.add_argument(
        "--sim-draws",
        type=int,
        default=8,
        metavar="N",
        help="the simulator's side of each pair: the mean over N sets of its own random "
        "draws (cache network and service times, eviction sampling), the request stream "
        "and origin latencies kept as the real run draws them (default 8; 1: the seed's "
        "own draw only, one run)",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="each run's duration (default 12 s, of which 4 s warm-up)",
    )
    p.set_defaults(func=run_fidelity)


def run_fidelity(args: argparse.Namespace) -> int:
    from lab.fidelity.grid import DURATION, QUICK, full_grid, run_pairs, sample_grid, select
    from lab.fidelity.report import figure, frame, section, table, update_report, write_text
    from lab.redis.binaries import available_binaries

    binaries = [b for b in available_binaries() if args.server in ("all", b.flavor)]
    if not binaries:
        print(
            f"cachelab: error: --server {args.server}: no such server binary on this machine",
            file=sys.stderr,
        )
        return 2
    if args.quick:
        cells = select(QUICK, args.cells)
    elif args.sample is not None:  # with --cells: N of the matching cells, shuffled
        shuffled = sample_grid(len(full_grid())) if args.cells else sample_grid(args.sample)
        cells = select(shuffled, args.cells)[: args.sample]
    else:
        cells = select(full_grid(), args.cells)
    if not cells:
        print(f"cachelab: error: --cells {args.cells}: no such cell", file=sys.stderr)
        return 2
    if args.seeds < 1 or args.sim_draws < 1 or (args.duration is not None and args.duration <= 0):
        print(
            "cachelab: error: --seeds, --sim-draws and --duration must be positive",
            file=sys.stderr,
        )
        return 2
    seeds = [args.seed + i for i in range(args.seeds)]
    duration = DURATION if args.duration is None else args.duration
    records: list[dict[str, object]] = []
    skipped: list[str] = []
    out = args.results / "fidelity"
    for cell in cells:
        for binary in binaries:
            print(f"fidelity: {cell.name} on {binary.label} ...", file=sys.stderr, flush=True)
            row, skips = run_pairs(
                cell,
                binary,
                seeds,
                duration=duration,
                matched=args.matched or args.twin != "lag",
                twin_model=args.twin,
                sim_draws=args.sim_draws,
            )
            skipped.extend(skips)
            if row is not None:
                records.append(row.record())
                for run in row.runs or (row,):  # every run's summaries, to study
                    if run.twin is not None:  # the twin again without a rerun
                        _append_json(out / "fidelity-runs.jsonl", run)
        # after every cell: an interrupted run keeps what it measured
        write_text(out / "fidelity.csv", frame(records).to_csv(index=False))
    rows = frame(records)
    write_text(out / "fidelity.csv", rows.to_csv(index=False))
    figure_rel = None
    if not rows.empty:
        figure(rows, out / "figures" / "fidelity")
        figure_rel = "fidelity/figures/fidelity.png"
    text = section(rows, figure_rel)
    write_text(out / "fidelity.md", text)
    update_report(args.results / "REPORT.md", text)
    for line in skipped:
        print(f"cachelab: warning: {line}", file=sys.stderr)
    print(table(rows) if not rows.empty else "no cell ran")
    print(f"written: {out}/ (fidelity.csv, fidelity.md, figures/), {args.results}/REPORT.md")
    return 0


def _append_json(path: Path, row: Any) -> None:
    """One line per row: the cell and the sim, real and twin summaries."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    line = {"cell": row.cell.name, "server": row.server, "seed": row.sim.get("seed")}
    line |= {"sim": row.sim, "real": row.real, "twin": row.twin}
    line["twin_latencies"] = row.twin_latencies
    with path.open("a") as f:
        f.write(json.dumps(line, default=str) + "\n")
