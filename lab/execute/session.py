"""A plan of cells run to the end: finished cells with the same config hash reused
(unless forced), simulator cells on the chosen executor, real-server cells one at a
time here (unless asked: they share the CPUs with the servers they start, and two at
once would measure each other), one progress bar over all of them, each result
written here as it arrives."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.execute.executors import Dask, Executor, InProcess, Processes
from lab.execute.work import Outcome, Task
from lab.results import finished_run, write_run
from lab.scenario import Cell, Scenario

SIMULATED = frozenset({"sim"})
"""Backends whose cells use only this machine's CPU: safe to run side by side."""


def default_jobs() -> int:
    """Every core this process may use, or CACHELAB_JOBS."""
    configured = os.environ.get("CACHELAB_JOBS", "")
    if configured.isdigit() and int(configured) >= 1:
        return int(configured)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class Choice:
    """How to run: worker processes for simulator cells, for real-server cells, Dask."""

    jobs: int = 1
    real_jobs: int = 1
    dask: str | None = None
    force: bool = False

    def describe(self) -> str:
        sim = Dask(self.dask, self.jobs) if self.dask else Processes(self.jobs)
        return f"simulator cells {sim.describe()}, real-server cells {self.real_jobs} at a time"

    def for_cells(self, simulated: bool, count: int) -> Executor:
        if simulated and self.dask is not None:
            return Dask(self.dask, self.jobs)
        jobs = self.jobs if simulated else self.real_jobs
        return Processes(jobs) if jobs > 1 and count > 1 else InProcess()


@dataclass
class Tally:
    """What became of every cell of the plan."""

    written: list[Path] = field(default_factory=list)
    reused: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def execute(
    plan: list[tuple[Scenario, Cell]],
    results: Path,
    choice: Choice,
    options: dict[str, dict[str, Any]] | None = None,
    progress: bool | None = None,
) -> Tally:
    """Run (or reuse) every cell of `plan`, writing each run under `results`."""
    from tqdm import tqdm

    tally = Tally()
    tasks = []
    for scenario, cell in plan:
        given = {k: v for k, v in (options or {}).get(cell.backend, {}).items() if v is not None}
        # servers named on the command line are not in the config hash: never reuse then
        found = None if choice.force or given else finished_run(results, scenario, cell)
        if found is not None:
            tally.reused.append(found)
        else:
            tasks.append(Task(scenario, cell, given))
    # disable=None: a bar on a terminal, none in logs; --progress / --no-progress override
    bar_format = "{l_bar}{bar}| [{elapsed}<{remaining}]"
    disable = None if progress is None else not progress
    with tqdm(total=len(plan), disable=disable, file=sys.stderr, bar_format=bar_format) as bar:
        bar.update(len(tally.reused))
        finished = [len(tally.reused)]

        where = [""]

        def running(task: Task, fraction: float) -> None:
            bar.n = finished[0] + fraction
            bar.set_description(f"{task.run_label} (run {finished[0] + 1} of {len(plan)})")

        def done(outcome: Outcome) -> None:
            _record(outcome, results, tally)
            finished[0] += 1
            bar.n = finished[0]
            if where[0]:
                bar.set_description(f"{finished[0]} of {len(plan)} runs done {where[0]}")
            bar.refresh()

        for simulated in (True, False):
            group = [t for t in tasks if (t.cell.backend in SIMULATED) == simulated]
            if group:
                executor = choice.for_cells(simulated, len(group))
                where[0] = "" if isinstance(executor, InProcess) else executor.describe()
                if where[0]:
                    bar.set_description(f"{finished[0]} of {len(plan)} runs done {where[0]}")
                executor.run(group, done, running)
    return tally


def _record(outcome: Outcome, results: Path, tally: Tally) -> None:
    label = outcome.task.label
    if outcome.result is not None:
        tally.written.append(write_run(results, outcome.task.scenario, outcome.result))
    elif outcome.skipped is not None:
        tally.skipped.append(f"{label}: skipped: {outcome.skipped}")
    else:
        tally.failed.append(f"{label}: failed: {outcome.failed}")
