"""Where a `cachelab bench` spends its wall time: each real-server cell's phases
(servers started, capacity calibrated, origin and connections opened, the capacity
settle, the measured run, the final state, parts closed, servers stopped, the result
written) and the report's, with timestamps from the start of the command.

It runs the real `cachelab bench` in this process with timers wrapped around those
steps (nothing else changes), then prints one line per real cell and the totals.
Usage: python bench/real_phases.py [cachelab bench options, e.g. --quick --jobs 1]
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

T0 = time.perf_counter()
EVENTS: list[tuple[str, str, float, float]] = []
"""(thread, phase, start, end) in seconds since T0."""
_CELL = threading.local()


def _record(phase: str, start: float) -> None:
    EVENTS.append((getattr(_CELL, "name", "-"), phase, start - T0, time.perf_counter() - T0))


def wrap(owner: Any, name: str, phase: str) -> None:
    original = getattr(owner, name)
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                _record(phase, start)

        setattr(owner, name, timed_async)
        return

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            _record(phase, start)

    setattr(owner, name, timed)


def install() -> None:
    from lab.execute import executors, session, work
    from lab.memcached import backend as mc_backend
    from lab.processes import server
    from lab.redis import backend as redis_backend
    from lab.redis import capacity, deployment, site
    from lab.report import document, figures, table

    original_run_task = work.run_task

    def run_task(task: Any, progress: Callable[[float], None] | None = None) -> Any:
        _CELL.name = task.run_label
        start = time.perf_counter()
        try:
            return original_run_task(task, progress)
        finally:
            _record("cell (total)", start)
            _CELL.name = "-"

    session.run_task = run_task  # real cells beside simulator workers
    argv = sys.argv
    if "--jobs" in argv and argv[argv.index("--jobs") + 1 :][:1] == ["1"]:
        executors.run_task = run_task  # every cell of --jobs 1 runs in this process
    wrap(site, "_deployment", "servers start")
    wrap(site, "_calibrate", "capacity calibrate")
    wrap(deployment.LocalShards, "stop", "servers stop")
    wrap(deployment.LocalCluster, "stop", "servers stop")
    wrap(server, "start_many", "servers start")
    wrap(mc_backend, "start_many", "servers start")
    wrap(server.ServerGroup, "stop", "servers stop")
    for backend in (redis_backend.RedisBackend, mc_backend.MemcachedBackend):
        wrap(backend, "_parts", "origin+connections open")
        wrap(backend, "final_state", "final state")
        wrap(backend, "_in_loop", "event loop (parts..close)")
    wrap(capacity.CapacityController, "prime", "capacity prime+settle")
    wrap(capacity.CapacityController, "settle", "capacity settle")
    from lab.aio import runtime

    wrap(runtime.AsyncioRuntime, "run_async", "measured run")
    wrap(session, "_record", "result written")
    wrap(session, "_beside", "real cells + simulator workers")
    wrap(executors.Pool, "shutdown", "worker pool shutdown")
    wrap(figures, "draw_scenario", "figures")
    wrap(document, "write_report", "report (REPORT.md, figures)")
    wrap(table, "report", "report tables")


OUTSIDE = (
    "figures",
    "report (REPORT.md, figures)",
    "report tables",
    "real cells + simulator workers",
    "worker pool shutdown",
)


def summary() -> None:
    cells: dict[str, list[tuple[str, float, float]]] = defaultdict(list)
    for cell, phase, start, end in EVENTS:
        cells[cell].append((phase, start, end))
    totals: dict[str, float] = defaultdict(float)
    print("\nreal-server cells (seconds; start = since the command began):", file=sys.stderr)
    for cell, phases in cells.items():
        if cell == "-" or not any(p == "servers start" for p, _, _ in phases):
            continue
        (total,) = [(s, e) for p, s, e in phases if p == "cell (total)"]
        parts = ", ".join(f"{p} {e - s:.2f}" for p, s, e in phases if p != "cell (total)")
        print(f"  {cell}: at {total[0]:.1f}, {total[1] - total[0]:.2f} s: {parts}", file=sys.stderr)
        for p, s, e in phases:
            totals[p] += e - s
    print("totals over the real cells:", file=sys.stderr)
    for p, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"  {p:<28} {seconds:7.2f}", file=sys.stderr)
    print("outside the cells:", file=sys.stderr)
    for cell, phase, start, end in EVENTS:
        if cell == "-" and phase in OUTSIDE:
            print(f"  {phase:<28} {end - start:7.2f}  (at {start:.1f})", file=sys.stderr)
    print(f"command: {time.perf_counter() - T0:.1f} s", file=sys.stderr)


def main() -> int:
    install()
    from lab.cli import main as cachelab

    try:
        return cachelab(["bench", *sys.argv[1:]])
    finally:
        summary()


if __name__ == "__main__":
    sys.exit(main())
