"""The `cachelab` command: run, bench, validate, list, report, trace."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, NoReturn

from lab import backends
from lab.names import one_line
from lab.scenario import Cell, Scenario, ScenarioError, check_overrides, load_scenario

DEFAULT_SCENARIOS = Path("scenarios")
DEFAULT_RESULTS = Path("results")


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit status 2."""


def _load_all(paths: list[Path]) -> list[tuple[Path, Scenario]]:
    """Validate every scenario before running any, so bad input writes nothing."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.glob("*.yaml")))
        else:
            files.append(path)
    if not files:
        raise UsageError(f"no scenario files found in {', '.join(map(str, paths))}")
    return [(f, load_scenario(f)) for f in files]


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _plan(
    scenarios: list[tuple[Path, Scenario]],
    backend_names: list[str] | None,
    strategies: list[str] | None,
    seeds: list[int] | None,
    i_know: bool,
) -> list[tuple[Scenario, Cell]]:
    """Every run to make, with the command-line narrowing validated like the YAML and
    each scenario's cost checked against its limits, before anything runs."""
    from lab.limits import check

    plan: list[tuple[Scenario, Cell]] = []
    for path, scenario in scenarios:
        check_overrides(
            scenario, str(path), seeds=seeds, backends=backend_names, strategies=strategies
        )
        cells = scenario.cells(backend_names, strategies, seeds)
        check(scenario, cells, str(path), i_know=i_know)
        plan.extend((scenario.at(cell.point), cell) for cell in cells)  # a sweep's point
    return plan


def _writable_results(results: Path, scenarios: set[str]) -> None:
    """Refuse a --results that cannot hold run folders before any run is made (a file,
    a read-only place, /proc, a file where a scenario's folder goes): one line,
    nothing left behind."""
    for name in sorted(scenarios):
        if (results / name).exists() and not (results / name).is_dir():
            raise UsageError(f"--results {results}: {results / name} is not a folder")
    missing: list[Path] = []
    probe = results
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"--results {results}: {probe} is not a folder")
    created: list[Path] = []
    try:
        for folder in reversed(missing):
            try:
                folder.mkdir()
                created.append(folder)
            except FileExistsError:  # another run made it just now: fine if a folder
                if not folder.is_dir():
                    raise
        fd, name = tempfile.mkstemp(prefix=".probe-", dir=results)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        for folder in reversed(created):  # only what this run made
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise UsageError(
            f"--results {results}: cannot write there: {exc.strerror or exc}"
        ) from None


def _run(
    plan: list[tuple[Scenario, Cell]],
    results: Path,
    progress: bool | None,
    quiet: bool,
    options: dict[str, dict[str, Any]] | None = None,
    choice: Any = None,
    side_jobs: Any = None,
) -> int:
    """Run every cell (lab.execute: reused, here, on worker processes or Dask); `options`
    are each backend's constructor arguments, by name."""
    from lab.execute.executors import ExecutorError
    from lab.execute.session import Choice, execute
    from lab.report.table import report
    from lab.results import load_all

    _writable_results(results, {scenario.name for scenario, _ in plan})
    try:
        tally = execute(plan, results, choice or Choice(), options, progress, side_jobs)
    except ExecutorError as exc:
        raise UsageError(str(exc)) from None
    for line in [*tally.skipped, *tally.failed]:
        print(one_line(line), file=sys.stderr)
    kept = [*tally.written, *tally.reused]
    if kept and not quiet:
        names = {s.name for s, _ in plan}
        frame = load_all(*(results / n for n in sorted(names)))
        print(report(frame[frame["path"].isin({str(p) for p in kept})]))
    if kept:
        reused = f", {len(tally.reused)} reused (same config hash; --force re-runs)"
        print(
            f"{_plural(len(tally.written), 'run', 'runs')} written"
            f"{reused if tally.reused else ''} under {results}/",
            file=sys.stderr,
        )
    if tally.failed:
        return 1  # reported above; the other cells are kept
    return 1 if plan and not kept else 0  # every run skipped: nothing was measured


def _target(args: argparse.Namespace) -> Any:
    """--redis-url / --redis-cluster / --allow-destructive as a deployment Target."""
    if not (args.redis_url or args.redis_cluster or args.allow_destructive):
        return None
    from lab.redis.deployment import DeploymentError, parse_target

    try:
        return parse_target(args.redis_url, args.redis_cluster, args.allow_destructive)
    except DeploymentError as exc:
        raise UsageError(str(exc)) from None


def cmd_run(args: argparse.Namespace) -> int:
    target = _target(args)
    scenarios = _load_all(args.scenario)
    names = args.backend
    if target is not None and names is None:
        names = ["redis"]  # naming servers means: run on them
    if target is not None and any(name != "redis" for name in names):
        raise UsageError("--redis-url/--redis-cluster apply to --backend redis only")
    if target is not None:
        from lab.redis.deployment import DeploymentError
        from lab.redis.site import check_target

        for path, scenario in scenarios:
            try:
                check_target(target, scenario)
            except DeploymentError as exc:
                raise UsageError(f"{path}: {exc}") from None
    plan = _plan(scenarios, names, args.strategy, args.seed, args.i_know)
    return _run(
        plan,
        args.results,
        args.progress,
        args.quiet,
        {"redis": {"target": target}} if target is not None else None,
        _choice(args),
    )


def _choice(args: argparse.Namespace) -> Any:
    """--jobs / --real-jobs / --dask / --force as the executors' Choice."""
    from lab.execute.session import Choice, default_jobs

    jobs = args.jobs if args.jobs is not None else default_jobs()
    if args.dask is not None and not args.dask.strip():
        raise UsageError("--dask: give a scheduler address (tcp://host:8786) or local")
    return Choice(jobs, args.real_jobs, args.dask, args.force)


def cmd_bench(args: argparse.Namespace) -> int:
    """Every benchmark scenario on every backend it names; then results/REPORT.md with the
    tables and (unless --no-figures) figures under results/<scenario>/figures/."""
    from lab.report.document import write_report
    from lab.report.table import report
    from lab.results import load_all

    scenarios = [(p, s) for p, s in _load_all([args.scenarios]) if s.bench]
    if args.quick:
        scenarios = [(p, s.scaled(0.2)) for p, s in scenarios]
    plan = _plan(scenarios, None, None, None, args.i_know)
    formats = ("png", "svg") if args.svg else ("png",)
    started = time.perf_counter()
    status = _run(
        plan,
        args.results,
        args.progress,
        quiet=True,
        choice=_choice(args),
        side_jobs=_figures_beside(args.results, formats) if args.figures else None,
    )
    ran = time.perf_counter() - started
    frame = load_all(*(args.results / s.name for _, s in scenarios))
    # --jobs 1 is one process throughout, the figures too: the sequential reference
    jobs = 1 if _choice(args).jobs == 1 else None
    written = write_report(frame, args.results, figures=args.figures, jobs=jobs, formats=formats)
    print(report(frame))
    figures = f" with {len(written.figures)} figure file(s)" if written.figures else ""
    print(f"report written to {written.report}{figures}", file=sys.stderr)
    print(
        f"bench: {len(plan)} runs in {ran:.1f} s wall time ({_choice(args).describe()}), "
        f"{time.perf_counter() - started:.1f} s with the report",
        file=sys.stderr,
    )
    return status  # 1 when a run failed (listed above): the report holds the others


def _figures_beside(results: Path, formats: tuple[str, ...]) -> Any:
    """Each finished scenario's figures, drawn by a spare worker while other cells run
    (the report then finds them drawn from the same runs and keeps them)."""
    from functools import partial

    from lab.report.figures import draw_scenario

    return lambda name: partial(draw_scenario, str(results), name, formats)


def _warm_up(args: argparse.Namespace) -> None:
    """Start the workers' side now, so their imports (the fork server's, or a Dask
    LocalCluster's) overlap with this process loading and planning its scenarios."""
    from lab.execute.session import default_jobs

    jobs = args.jobs if args.jobs is not None else default_jobs()
    if args.func is cmd_run and args.backend and "sim" not in args.backend:
        return  # real-server cells only: they run here, one at a time
    if args.dask == "local":
        from lab.execute.executors import start_local_cluster

        start_local_cluster(jobs)
    elif args.dask is None and jobs > 1:
        from lab.execute.executors import start_fork_server

        figures = args.func is cmd_bench and args.figures
        start_fork_server(["lab.report.figures"] if figures else [])


def cmd_validate(args: argparse.Namespace) -> int:
    """Everything `run` checks before running (the schema and the limits), and the estimate."""
    from lab.limits import check

    checked = []
    for path, scenario in _load_all(args.scenario):
        cells = scenario.cells()
        checked.append(
            (path, scenario, cells, check(scenario, cells, str(path), i_know=args.i_know))
        )
    for path, scenario, cells, found in checked:
        strategies = _plural(len(scenario.strategies), "strategy", "strategies")
        runs = _plural(len(cells), "run", "runs")
        print(
            f"{path}: ok ({scenario.name}: {strategies},{_sweep_text(scenario)} {runs}; "
            f"{found.describe()})"
        )
    return 0


def _sweep_text(scenario: Scenario, before: str = " ", after: str = ",") -> str:
    """How many cells a sweep expands to ('' without one)."""
    points = len(scenario.points())
    return f"{before}a sweep of {_plural(points, 'cell', 'cells')}{after}" if points else ""


def cmd_list(args: argparse.Namespace) -> int:
    from lab.patterns.catalog import catalog

    print("Scenarios:")
    for path in sorted(args.scenarios.glob("*.yaml")):
        try:
            scenario = load_scenario(path)
            lines = scenario.description.strip().splitlines()  # may be only spaces
            first = lines[0] if lines else ""
            print(f"  {path}  {one_line(first)}{_sweep_text(scenario, '  [', ']')}")
        except ScenarioError as exc:
            print(f"  {path}  INVALID: {one_line(str(exc))}")
    print(f"\n{catalog()}")
    print("\nBackends:")
    for name in backends.names():
        first, *more = backends.load(name).describe().splitlines()
        print(f"  {name:<14} {first}")
        for line in more:
            print(f"  {'':<14} {line}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Tables from existing runs on stdout; --out also writes them to a file;
    --output-dir writes DIR/REPORT.md with the figures under DIR/<scenario>/figures/."""
    from lab.report.table import report
    from lab.results import load_all

    frame = load_all(*args.results)
    if frame.empty:
        raise UsageError(f"no runs found under {', '.join(map(str, args.results))}")
    if args.target is not None:
        from lab.report.target import TargetError, target_report

        try:
            print(target_report(frame, args.target), end="")
        except TargetError as exc:
            raise UsageError(str(exc)) from None
        return 0
    text = report(frame)
    if args.out:
        args.out.write_text(text)
    if args.output_dir:
        from lab.report.document import write_report

        written = write_report(frame, args.output_dir, figures=args.figures)
        figures = f" with {len(written.figures)} figure file(s)" if written.figures else ""
        print(f"report written to {written.report}{figures}", file=sys.stderr)
    print(text)
    return 0


class _Parser(argparse.ArgumentParser):
    """Command-line mistakes as one line and exit status 2, like scenario errors (argparse
    would print the usage first); `--help` still prints the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"cachelab: error: {one_line(message)} (see {self.prog} --help)\n")


def _executor_flags(p: argparse.ArgumentParser) -> None:
    """--jobs, --real-jobs, --dask, --force (run and bench)."""

    def count(text: str) -> int:
        if not text.isdigit() or int(text) < 1:
            raise argparse.ArgumentTypeError(f"expected a number of workers >= 1, got {text!r}")
        return int(text)

    p.add_argument(
        "--jobs",
        type=count,
        metavar="N",
        help="run simulator cells on N local worker processes "
        "(default: every core; CACHELAB_JOBS sets another default)",
    )
    p.add_argument(
        "--real-jobs",
        type=count,
        default=1,
        metavar="N",
        help="real-server cells side by side (default 1: they share the CPUs with "
        "their servers, and would measure each other)",
    )
    p.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run simulator cells on the dask.distributed scheduler at ADDRESS "
        "(tcp://host:8786), or on a LocalCluster of --jobs workers with `local`",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="re-run cells whose results are there with the same config hash (default: reuse them)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cachelab", description="Measure distributed caching patterns side by side."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def progress_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--progress",
            dest="progress",
            action="store_true",
            default=None,
            help="always show the progress bar (default: only on a terminal)",
        )
        p.add_argument("--no-progress", dest="progress", action="store_false")

    def i_know(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--i-know",
            action="store_true",
            help="run even when the estimated memory or time is over the scenario's limits",
        )

    run = sub.add_parser("run", help="run scenarios and write results")
    run.add_argument("scenario", nargs="+", type=Path, help="scenario files or folders")
    run.add_argument(
        "--backend",
        action="append",
        choices=backends.names(),
        help="run only this backend (repeatable)",
    )
    run.add_argument("--strategy", action="append", help="run only this strategy (repeatable)")
    run.add_argument("--seed", action="append", type=int, help="run only this seed (repeatable)")
    run.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    run.add_argument(
        "--quiet", action="store_true", help="do not print the table (the summary line stays)"
    )
    i_know(run)
    run.add_argument(
        "--redis-url",
        action="append",
        metavar="URL",
        help="run on this existing server instead of starting one: redis://host:port[/db] "
        "(repeat once per node; implies --backend redis)",
    )
    run.add_argument(
        "--redis-cluster",
        metavar="HOST:PORT,...",
        help="run on this existing Redis Cluster (seed nodes; implies --backend redis)",
    )
    run.add_argument(
        "--allow-destructive",
        action="store_true",
        help="with --redis-url/--redis-cluster: let the lab flush, set maxmemory, pause "
        "and fail over those servers (refused otherwise)",
    )
    progress_flags(run)
    _executor_flags(run)
    run.set_defaults(func=cmd_run)

    bench = sub.add_parser("bench", help="run the benchmark scenarios and write REPORT.md")
    bench.add_argument("--scenarios", type=Path, default=DEFAULT_SCENARIOS)
    bench.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    bench.add_argument("--quick", action="store_true", help="each scenario at 1/5 length, one seed")
    bench.add_argument(
        "--no-figures",
        dest="figures",
        action="store_false",
        help="tables only (default: figures under RESULTS/<scenario>/figures/)",
    )
    bench.add_argument(
        "--svg",
        action="store_true",
        help="each figure as SVG too, beside its PNG (about a third more drawing time; "
        "`cachelab report RESULTS --output-dir DIR` writes both)",
    )
    progress_flags(bench)
    _executor_flags(bench)
    i_know(bench)
    bench.set_defaults(func=cmd_bench)

    validate = sub.add_parser("validate", help="check scenarios without running them")
    validate.add_argument("scenario", nargs="+", type=Path)
    i_know(validate)
    validate.set_defaults(func=cmd_validate)

    lst = sub.add_parser("list", help="list shipped scenarios and strategy parts")
    lst.add_argument("--scenarios", type=Path, default=DEFAULT_SCENARIOS)
    lst.set_defaults(func=cmd_list)

    rep = sub.add_parser("report", help="tables (and figures) from existing results")
    rep.add_argument("results", nargs="*", type=Path, default=[DEFAULT_RESULTS])
    rep.add_argument("--out", type=Path, help="also write the markdown tables here")
    rep.add_argument(
        "-o",
        "--output-dir",
        type=Path,
        help="write DIR/REPORT.md with the tables and figures under DIR/<scenario>/figures/",
    )
    rep.add_argument(
        "--no-figures",
        dest="figures",
        action="store_false",
        help="with --output-dir: tables only",
    )
    rep.add_argument(
        "--target",
        metavar="BOUNDS",
        help="only the cells whose means meet every bound, cheapest origin load first, "
        "for example 'hit_ratio>=0.9,stale_read_ratio<=0.01' (or say that none does)",
    )
    rep.set_defaults(func=cmd_report)

    from lab.trace.command import add_trace_parser  # trace stats / trace synth

    add_trace_parser(sub)
    from lab.fidelity.command import add_fidelity_parser  # the sim-vs-real grid

    add_fidelity_parser(sub)
    return parser


def _warn(message: Warning | str, *_: Any, **__: Any) -> None:
    """Warnings (a corrupt results file skipped, ...) as one line each."""
    print(f"cachelab: warning: {one_line(str(message))}", file=sys.stderr)


def _sweep_stale() -> None:
    """Folders a SIGKILLed earlier run left in the temp dir (its servers', its
    origin's) go before this run makes its own."""
    from lab.processes import sweep_stale_dirs

    with contextlib.suppress(Exception):
        sweep_stale_dirs()


def main(argv: list[str] | None = None) -> int:
    from lab.processes.signals import sigterm_as_interrupt

    try:
        with warnings.catch_warnings(), sigterm_as_interrupt():
            args = build_parser().parse_args(argv)
            if args.func in (cmd_run, cmd_bench):
                _sweep_stale()
                _warm_up(args)
            warnings.showwarning = _warn
            return int(args.func(args))
    except (ScenarioError, UsageError) as exc:
        print(f"cachelab: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`cachelab list | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a shell reports SIGPIPE
    except KeyboardInterrupt:  # Ctrl-C, SIGINT or SIGTERM (`sigterm_as_interrupt`)
        print(
            "cachelab: interrupted; finished runs are kept, the current one is discarded",
            file=sys.stderr,
        )
        return 130
    finally:
        if "lab.execute.executors" in sys.modules:
            from lab.execute.executors import close_unused_clusters

            close_unused_clusters()
