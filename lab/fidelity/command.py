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
    p.set_defaults(func=run_fidelity)


def run_fidelity(args: argparse.Namespace) -> int:
    from lab.fidelity.grid import QUICK, full_grid, run_pair, sample_grid
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
        cells = QUICK
    elif args.sample is not None:
        cells = sample_grid(args.sample)
    else:
        cells = full_grid()
    records, skipped = [], []
    out = args.results / "fidelity"
    for cell in cells:
        for binary in binaries:
            print(f"fidelity: {cell.name} on {binary.label} ...", file=sys.stderr, flush=True)
            row = run_pair(cell, binary, seed=args.seed)
            if isinstance(row, str):
                skipped.append(row)
            else:
                records.append(row.record())
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
