"""Where cells run: here, in local worker processes, or on a Dask cluster. Each calls
`done` with every cell's Outcome as it finishes, in the calling thread, and on any
interruption (Ctrl-C) stops its workers before re-raising: nothing keeps running."""

from __future__ import annotations

import logging
import multiprocessing
import signal
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Protocol

from lab.execute.work import Outcome, Task, run_task
from lab.names import one_line

Done = Callable[[Outcome], None]
Running = Callable[[Task, float], None]
"""The running cell's completed fraction (only the in-process executor reports it)."""


class ExecutorError(Exception):
    """An executor that cannot start (no Dask installed, a scheduler that does not answer)."""


class Executor(Protocol):
    def describe(self) -> str: ...

    def run(self, tasks: list[Task], done: Done, running: Running) -> None: ...


class InProcess:
    """One cell after another in this process, with the running cell's progress."""

    def describe(self) -> str:
        return "in this process"

    def run(self, tasks: list[Task], done: Done, running: Running) -> None:
        for task in tasks:

            def progress(fraction: float, task: Task = task) -> None:
                running(task, fraction)

            done(run_task(task, progress))


def _ignore_interrupts() -> None:
    """Workers leave Ctrl-C to the parent, which stops them: no tracebacks from each."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _lost(task: Task, exc: BaseException) -> Outcome:
    return Outcome(task, failed=one_line(f"{type(exc).__name__}: {exc}"))


@dataclass
class Processes:
    """`jobs` local worker processes (forkserver: started clean, not forked from a
    parent that may hold threads and servers), each running one cell at a time."""

    jobs: int

    def describe(self) -> str:
        return f"on {self.jobs} local worker processes"

    def run(self, tasks: list[Task], done: Done, running: Running) -> None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["lab.execute.work"])
        pool = ProcessPoolExecutor(
            max_workers=min(self.jobs, len(tasks)),
            mp_context=context,
            initializer=_ignore_interrupts,
        )
        futures: dict[Future[Outcome], Task] = {pool.submit(run_task, t): t for t in tasks}
        try:
            for future in as_completed(futures):
                try:
                    outcome = future.result()
                except Exception as exc:  # the worker died (killed, out of memory)
                    outcome = _lost(futures[future], exc)
                done(outcome)
        except BaseException:
            _stop(pool)
            raise
        pool.shutdown(wait=True)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the workers now (Python 3.11 has no public
    way to end a pool's running workers)."""
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=10)


@dataclass
class Dask:
    """A dask.distributed cluster: `address` of its scheduler, or `local` for a
    LocalCluster of `jobs` single-threaded worker processes started here."""

    address: str
    jobs: int

    def describe(self) -> str:
        if self.address == "local":
            return f"on a Dask LocalCluster of {self.jobs} workers"
        return f"on the Dask cluster at {self.address}"

    def run(self, tasks: list[Task], done: Done, running: Running) -> None:
        client, cluster = self._connect()
        futures: list[Any] = []
        try:
            futures = [client.submit(run_task, task, pure=False) for task in tasks]
            by_key = {f.key: t for f, t in zip(futures, tasks, strict=True)}
            from distributed import as_completed as completed

            for future in completed(futures):
                try:
                    outcome = future.result()
                except Exception as exc:  # the worker died, or the result did not travel
                    outcome = _lost(by_key[future.key], exc)
                future.release()
                done(outcome)
        except BaseException:
            client.cancel(futures, force=True)
            raise
        finally:
            client.close()
            if cluster is not None:
                cluster.close()

    def _connect(self) -> tuple[Any, Any]:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ExecutorError(
                "--dask: dask.distributed is not installed; pip install 'dask[distributed]'"
            ) from None
        if self.address == "local":
            cluster = LocalCluster(
                n_workers=self.jobs,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            return Client(cluster), cluster
        try:
            return Client(self.address, timeout="15s"), None
        except (OSError, TimeoutError, ValueError) as exc:
            raise ExecutorError(
                f"--dask {self.address}: cannot reach the scheduler ({one_line(str(exc))}); "
                "start one with `dask scheduler` or give its tcp://host:8786 address"
            ) from None
