"""`cachelab trace stats FILE` and `cachelab trace synth SCENARIO -o FILE`.

Kept out of lab/cli.py (which only registers the subcommand) so the trace
tools stay one self-contained module. Imports of numpy and pandas happen when
a trace command runs, not when the parser is built.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lab.tracefile.spec import FORMATS, TraceError

DEFAULT_STATS_DIR = Path("results") / "traces"


def add_trace_parser(sub: Any) -> None:
    """Register `trace stats` and `trace synth` on the top-level subparsers."""
    trace = sub.add_parser("trace", help="trace statistics; a scenario's stream as a trace")
    tsub = trace.add_subparsers(dest="trace_command", required=True)

    stats = tsub.add_parser("stats", help="requests, keys, popularity, reuse distances")
    stats.add_argument("file", type=Path, help="trace file (.zst compressed too)")
    stats.add_argument("--format", choices=FORMATS, help="default: from the file name")
    stats.add_argument(
        "--columns",
        metavar="FIELD=COLUMN,...",
        help="csv: which column holds time, key, op, size (names, or 1-based positions "
        "with --no-header), e.g. time=ts,key=id",
    )
    stats.add_argument("--no-header", dest="header", action="store_false", help="csv: no header")
    stats.add_argument("--delimiter", default=",", help="csv: the field separator")
    stats.add_argument("--time-unit", choices=["s", "ms", "us", "ns"], default="s")
    stats.add_argument(
        "--ops", metavar="OP=read|write,...", help="csv: map more operations (or remap them)"
    )
    stats.add_argument(
        "--zero-size",
        choices=["skip", "keep"],
        help="requests of size 0 (default: skip in oracleGeneral as libCacheSim does, keep in csv)",
    )
    stats.add_argument(
        "--sample-rate",
        type=float,
        default=1.0,
        help="reuse distances by SHARDS at this rate, e.g. 0.01 (default 1: exact)",
    )
    stats.add_argument(
        "-o",
        "--output-dir",
        type=Path,
        help=f"where stats.md/json, reuse.csv and the figure go (default "
        f"{DEFAULT_STATS_DIR}/<trace name>)",
    )
    stats.add_argument("--no-figure", dest="figure", action="store_false")
    stats.set_defaults(func=run_trace)

    synth = tsub.add_parser("synth", help="write a scenario's request stream as a trace")
    synth.add_argument("scenario", type=Path)
    synth.add_argument("-o", "--output", type=Path, required=True, help="trace file to write")
    synth.add_argument(
        "--format",
        choices=["oracleGeneral", "csv"],
        help="default: from the file name; csv is lossless, oracleGeneral keeps whole "
        "seconds and no ops",
    )
    synth.add_argument("--seed", type=int, help="default: the scenario's first seed")
    synth.add_argument("--requests", type=int, help="how many (default: the scenario's length)")
    synth.set_defaults(func=run_trace)


def _pairs(text: str | None, option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise TraceError(
                f"{option}: expected NAME=VALUE pairs separated by commas, got {item!r}"
            )
        out[name.strip()] = value.strip()
    return out


def spec_from_args(args: argparse.Namespace) -> Any:
    """The TraceSpec the stats options describe (one-line errors for bad options)."""
    from pydantic import ValidationError

    from lab.tracefile.spec import TraceSpec

    columns: dict[str, str | int] = {
        field: int(value) if value.isdigit() else value
        for field, value in _pairs(args.columns, "--columns").items()
    }
    try:
        return TraceSpec.model_validate(
            {
                "path": args.file,
                "format": args.format,
                "columns": columns,
                "header": args.header,
                "delimiter": args.delimiter,
                "time_unit": args.time_unit,
                "ops": _pairs(args.ops, "--ops"),
                "zero_size": args.zero_size,
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        option = {"columns": "--columns", "ops": "--ops", "delimiter": "--delimiter"}.get(
            str(first["loc"][0]), where
        )
        raise TraceError(f"{option}: {where}: {first['msg']}, got {first.get('input')!r}") from None


def _stats(args: argparse.Namespace) -> int:
    from lab.trace.report import stats_table, write_stats
    from lab.trace.stats import trace_stats
    from lab.tracefile.source import plain_name

    if not 0.0 < args.sample_rate <= 1.0:
        raise TraceError(f"--sample-rate: must be in (0, 1], got {args.sample_rate}")
    spec = spec_from_args(args)
    stats = trace_stats(spec, sample_rate=args.sample_rate)
    out = args.output_dir or DEFAULT_STATS_DIR / Path(plain_name(args.file)).stem
    written = write_stats(stats, out, figure=args.figure)
    print(stats_table(stats))
    print(f"{len(written)} file(s) written to {out}/", file=sys.stderr)
    return 0


def _synth(args: argparse.Namespace) -> int:
    from lab.scenario import load_scenario
    from lab.trace.synth import synthesize

    if args.requests is not None and args.requests < 1:
        raise TraceError(f"--requests: must be >= 1, got {args.requests}")
    scenario = load_scenario(args.scenario)
    if args.seed is not None and args.seed < 0:
        raise TraceError(f"--seed: must be >= 0, got {args.seed}")
    done = synthesize(scenario, args.output, args.format, args.seed, args.requests)
    print(
        f"{done.path}: {done.requests} requests ({done.writes} writes) of {scenario.name} "
        f"as {done.format}",
        file=sys.stderr,
    )
    if done.lost:
        print(
            f"note: {done.format} is lossy: {'; '.join(done.lost)}; write csv for an exact replay",
            file=sys.stderr,
        )
    return 0


def run_trace(args: argparse.Namespace) -> int:
    """Run a trace subcommand; a TraceError is one line on stderr and exit status 2."""
    try:
        return _stats(args) if args.trace_command == "stats" else _synth(args)
    except TraceError as exc:
        print(f"cachelab: error: {exc}", file=sys.stderr)
        return 2
