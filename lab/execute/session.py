"""A plan of cells run to the end: finished cells with the same config hash reused
(unless forced), simulator cells on the chosen executor, real-server cells one at a
time here (unless asked: they share the CPUs with the servers they start, and two at
once would measure each other), one progress bar over all of them, each result
written here as it arrives."""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.execute.executors import (
    BESIDE_NICENESS,
    Dask,
    Done,
    Executor,
    InProcess,
    Job,
    Pool,
    Processes,
    Running,
    longest_first,
)
from lab.execute.work import Outcome, Task, run_task
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
        beside = (
            f", with simulator cells on {self.beside()} of them beside each"
            if self.jobs > 1 and not self.dask and self.real_jobs == 1
            else ""
        )
        return (
            f"simulator cells {sim.describe()}, real-server cells {self.real_jobs} at a time"
            f"{beside}"
        )

    def beside(self) -> int:
        """Simulator workers while a real-server cell runs: one core is left to the real
        cell and its servers (they would measure the simulator's load otherwise)."""
        return max(1, self.jobs - 1)

    def for_cells(self, simulated: bool, count: int) -> Executor:
        if simulated and self.dask is not None:
            return Dask(self.dask, self.jobs)
        jobs = self.jobs if simulated else self.real_jobs
        return Processes(jobs) if jobs > 1 and count > 1 else InProcess()


SideJobs = Callable[[str], Job | None]
"""Given a scenario whose every cell is done, side work for a spare worker (its
figures), or None."""


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
    side_jobs: SideJobs | None = None,
) -> Tally:
    """Run (or reuse) every cell of `plan`, writing each run under `results`. On local
    workers, simulator cells run beside the real-server cells (on `choice.beside()`
    workers, on all once the real cells are done), and `side_jobs` gives the workers
    more to do as each scenario is complete (its figures)."""
    from tqdm import tqdm

    tally = Tally()
    tasks = []
    left = Counter(scenario.name for scenario, _ in plan)  # cells not done, by scenario
    for scenario, cell in plan:
        given = {k: v for k, v in (options or {}).get(cell.backend, {}).items() if v is not None}
        # servers named on the command line are not in the config hash: never reuse then
        found = None if choice.force or given else finished_run(results, scenario, cell)
        if found is not None:
            tally.reused.append(found)
            left[scenario.name] -= 1
        else:
            tasks.append(Task(scenario, cell, given))
    # disable=None: a bar on a terminal, none in logs; --progress / --no-progress override
    bar_format = "{l_bar}{bar}| [{elapsed}<{remaining}]"
    disable = None if progress is None else not progress
    with tqdm(total=len(plan), disable=disable, file=sys.stderr, bar_format=bar_format) as bar:
        bar.update(len(tally.reused))
        finished = [len(tally.reused)]
        where = [""]
        pools: list[Pool] = []

        def describe(text: str) -> None:
            where[0] = text
            if text:
                bar.set_description(f"{finished[0]} of {len(plan)} runs done {text}")

        def running(task: Task, fraction: float) -> None:
            bar.n = finished[0] + fraction
            bar.set_description(f"{task.run_label} (run {finished[0] + 1} of {len(plan)})")

        def done(outcome: Outcome) -> None:
            _record(outcome, results, tally)
            finished[0] += 1
            bar.n = finished[0]
            describe(where[0])
            bar.refresh()
            name = outcome.task.scenario.name
            left[name] -= 1
            if left[name] == 0 and pools and side_jobs is not None:
                job = side_jobs(name)
                if job is not None:
                    pools[0].add([job])

        sim = [t for t in tasks if t.cell.backend in SIMULATED]
        real = [t for t in tasks if t.cell.backend not in SIMULATED]
        local = choice.dask is None and choice.jobs > 1 and choice.real_jobs == 1
        if local and (sim or (real and side_jobs is not None)):
            _beside(sim, real, choice, pools, done, running, describe)
            return tally
        for simulated, group in ((True, sim), (False, real)):
            if group:
                executor = choice.for_cells(simulated, len(group))
                describe("" if isinstance(executor, InProcess) else executor.describe())
                executor.run(group, done, running)
    return tally


def _beside(
    sim: list[Task],
    real: list[Task],
    choice: Choice,
    pools: list[Pool],
    done: Done,
    running: Running,
    describe: Callable[[str], None],
) -> None:
    """Real-server cells one at a time here, simulator cells (then side jobs) on local
    workers meanwhile: `choice.beside()` of them while a real cell runs (a core left
    to it and its servers), all `choice.jobs` after. Results are written here between real cells,
    never while one measures."""
    beside = choice.beside() if real else choice.jobs
    pool = Pool(choice.jobs, limit=beside, niceness=BESIDE_NICENESS if real else 0)
    pools.append(pool)
    try:
        pool.add(longest_first(sim))
        if real:
            describe(f"(simulator cells on {beside} worker(s) beside the real-server cells)")
        taken = 0
        for task in real:
            taken += pool.drain(done)

            def progress(fraction: float, task: Task = task) -> None:
                running(task, fraction)

            done(run_task(task, progress))
        pool.unnice()
        pool.widen(choice.jobs)
        describe(Processes(choice.jobs).describe())
        pool.take(done, len(sim) - taken)
        pool.close()  # the cells are all done: the side jobs they made are queued
    except BaseException:
        pool.stop()
        raise
    pool.shutdown()


def _record(outcome: Outcome, results: Path, tally: Tally) -> None:
    label = outcome.task.label
    if outcome.result is not None:
        tally.written.append(write_run(results, outcome.task.scenario, outcome.result))
    elif outcome.skipped is not None:
        tally.skipped.append(f"{label}: skipped: {outcome.skipped}")
    else:
        tally.failed.append(f"{label}: failed: {outcome.failed}")
