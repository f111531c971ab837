"""One cell as a unit of work a worker process or a Dask worker can run: everything
it needs travels with it (the scenario of the cell's point, the cell, the backend's
options), and everything it produced comes back (the result, or why there is none)."""

from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass, field
from typing import Any

from lab import backends
from lab.backend import CellSkipped
from lab.names import one_line
from lab.runner import Progress, RunResult, run_cell
from lab.scenario import Cell, Scenario


@dataclass(frozen=True)
class Task:
    """A cell to run: its point's scenario, the cell and the backend's constructor options."""

    scenario: Scenario
    cell: Cell
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def run_label(self) -> str:
        """For the progress bar: `scenario [point] strategy backend s<seed>`."""
        cell = self.cell
        at = f" {cell.point}" if cell.point else ""
        return f"{self.scenario.name}{at} {cell.strategy} {cell.backend} s{cell.seed}"

    @property
    def label(self) -> str:
        return f"{self.scenario.name} {self.cell.folder}"


@dataclass
class Outcome:
    """What came of a task: a result, a skip (the backend cannot run it) or a failure."""

    task: Task
    result: RunResult | None = None
    skipped: str | None = None
    failed: str | None = None


_ONE_AT_A_TIME = threading.Lock()
"""A Dask worker with several threads would run cells side by side in one process:
they would share its CPU and its signal handlers. One cell per process at a time."""


def run_task(task: Task, progress: Progress | None = None) -> Outcome:
    """Run one cell; a failure is caught and described, never raised (the other cells
    go on). KeyboardInterrupt and SystemExit are not failures: they propagate."""
    with _ONE_AT_A_TIME:
        try:
            backend = backends.create(task.cell.backend, **task.options)
            return Outcome(task, result=run_cell(task.scenario, task.cell, progress, backend))
        except CellSkipped as why:
            return Outcome(task, skipped=str(why))
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            at = f" (at {where.filename.rsplit('/', 1)[-1]}:{where.lineno})"
            return Outcome(task, failed=one_line(f"{type(exc).__name__}: {exc}{at}"))
