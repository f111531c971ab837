"""Where cells run: here, in local worker processes, or on a Dask cluster. Each calls
`done` with every cell's Outcome as it finishes, in the calling thread, and on any
interruption (Ctrl-C) stops its workers before re-raising: nothing keeps running."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Protocol, cast

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


def _ignore_interrupts(niceness: int = 0) -> None:
    """Workers leave Ctrl-C to the parent, which stops them: no tracebacks from each.
    With `niceness`, the worker yields the CPU to the processes of normal priority."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if niceness:
        with contextlib.suppress(OSError):
            os.nice(niceness)


BESIDE_NICENESS = 10
"""How much lower the simulator workers' CPU priority is while real-server cells run
beside them: the real cell's load generator and its servers come first (the kernel
gives a niceness-10 process ~1/10 of a CPU a normal one also wants), the workers take
what is left, so they neither stretch the real cell's measured window nor disturb its
latencies."""


def _lost(task: Task, exc: BaseException) -> Outcome:
    return Outcome(task, failed=one_line(f"{type(exc).__name__}: {exc}"))


WORKER_PRELOAD = ["lab.execute.work", "lab.sim.backend"]
"""What the fork server imports once, so every worker it forks starts with the lab
loaded (about a second of imports each otherwise)."""


def start_fork_server(extra: list[str] | None = None) -> None:
    """Start the fork server now, importing the lab in the background while this process
    loads and plans its scenarios (otherwise the first worker waits for those imports).
    Cheap when it is running already; later preload lists are ignored."""
    from multiprocessing import forkserver

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([*WORKER_PRELOAD, *(extra or [])])
    forkserver.ensure_running()


Job = Callable[[], object]
"""Side work for a spare worker (drawing a finished scenario's figures): picklable."""


class Pool:
    """Local worker processes fed from a queue, at most `limit` items at a time (the
    limit can change: fewer beside a real-server cell); items are cells and side jobs.
    A thread here submits and collects; outcomes wait in `outcomes` for the calling
    thread, which alone writes results (never while a real cell measures beside)."""

    def __init__(self, jobs: int, limit: int | None = None, niceness: int = 0) -> None:
        start_fork_server()
        self.jobs = jobs
        self.limit = min(jobs, limit or jobs)
        self.niceness = niceness
        self.pool = ProcessPoolExecutor(
            max_workers=jobs,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=_ignore_interrupts,
            initargs=(niceness,),
        )
        self.pending: deque[Task | Job] = deque()
        self.flying: dict[Future[Any], Task | Job] = {}
        self.outcomes: queue.Queue[Outcome] = queue.Queue()
        self.changed = threading.Condition()
        self.closed = False
        self.stopped = False
        self.thread = threading.Thread(target=self._loop, name="cachelab-pool", daemon=True)
        self.thread.start()

    def add(self, items: list[Task] | list[Job]) -> None:
        with self.changed:
            self.pending.extend(items)
            self.changed.notify()

    def widen(self, limit: int) -> None:
        with self.changed:
            self.limit = min(self.jobs, limit)
            self.changed.notify()

    def unnice(self) -> None:
        """Back to normal priority for the workers started niced, and for those started
        later; where lowering a niceness is not permitted (no CAP_SYS_NICE or
        RLIMIT_NICE) the workers stay niced, only slower beside other processes."""
        if not self.niceness:
            return
        for process in list(getattr(self.pool, "_processes", {}).values()):
            with contextlib.suppress(OSError, TypeError):
                os.setpriority(os.PRIO_PROCESS, process.pid, 0)
        self.pool._initargs = (0,)
        self.niceness = 0

    def close(self) -> None:
        """No more items: the thread ends once every item is done."""
        with self.changed:
            self.closed = True
            self.changed.notify()

    def busy(self) -> bool:
        return self.thread.is_alive()

    def _loop(self) -> None:
        while True:
            with self.changed:
                while not self.stopped and self.pending and len(self.flying) < self.limit:
                    item = self.pending.popleft()
                    try:
                        future = (
                            self.pool.submit(run_task, item)
                            if isinstance(item, Task)
                            else self.pool.submit(item)
                        )
                    except Exception as exc:  # the pool broke (a worker was killed)
                        if isinstance(item, Task):
                            self.outcomes.put(_lost(item, exc))
                        continue
                    self.flying[future] = item
                if self.stopped or (self.closed and not self.pending and not self.flying):
                    return
                if not self.flying:
                    self.changed.wait(0.5)
                    continue
            finished, _ = wait(list(self.flying), timeout=0.2, return_when=FIRST_COMPLETED)
            for future in finished:
                with self.changed:
                    item = self.flying.pop(future)
                if not isinstance(item, Task):  # side work: a failure only costs its speed-up
                    with contextlib.suppress(Exception):
                        future.result()
                    continue
                try:
                    outcome = cast(Outcome, future.result())
                except Exception as exc:  # the worker died (killed, out of memory)
                    outcome = _lost(item, exc)
                self.outcomes.put(outcome)

    def drain(self, done: Done) -> int:
        """Hand every outcome waiting now to `done`; how many there were."""
        count = 0
        while True:
            try:
                outcome = self.outcomes.get_nowait()
            except queue.Empty:
                return count
            done(outcome)
            count += 1

    def take(self, done: Done, count: int) -> None:
        """Hand the next `count` outcomes to `done` as they come."""
        while count > 0:
            try:
                outcome = self.outcomes.get(timeout=0.2)
            except queue.Empty:
                if not self.busy() and self.outcomes.empty():
                    raise RuntimeError("the worker pool's thread ended early") from None
                continue
            done(outcome)
            count -= 1

    def shutdown(self) -> None:
        self.thread.join()
        self.pool.shutdown(wait=True)

    def stop(self) -> None:
        """Cancel what has not started and end the workers now."""
        with self.changed:
            self.stopped = True
            self.changed.notify()
        _stop(self.pool)
        self.thread.join(timeout=10)


@dataclass
class Processes:
    """`jobs` local worker processes (forkserver: started clean, not forked from a
    parent that may hold threads and servers), each running one cell at a time."""

    jobs: int

    def describe(self) -> str:
        return f"on {self.jobs} local worker processes"

    def run(self, tasks: list[Task], done: Done, running: Running) -> None:
        pool = Pool(min(self.jobs, len(tasks)))
        try:
            pool.add(longest_first(tasks))
            pool.take(done, len(tasks))
            pool.close()
        except BaseException:
            pool.stop()
            raise
        pool.shutdown()


def longest_first(tasks: list[Task]) -> list[Task]:
    """The costliest cells first (the estimate `validate` prints), so the last cells to
    finish are short ones and no worker idles while another ends a long cell."""
    from lab.limits import cell_costs

    def cost(task: Task) -> float:
        try:
            return sum(c.seconds for c in cell_costs(task.scenario, task.cell))
        except Exception:  # no estimate: keep its place
            return 0.0

    costs = [cost(t) for t in tasks]
    order = sorted(range(len(tasks)), key=lambda i: -costs[i])  # stable: ties in plan order
    return [tasks[i] for i in order]


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
            tasks = longest_first(tasks)
            futures = [
                client.submit(run_task, task, pure=False, priority=len(tasks) - i)
                for i, task in enumerate(tasks)
            ]
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
            from distributed import Client
        except ImportError:
            raise ExecutorError(
                "--dask: dask.distributed is not installed; pip install 'dask[distributed]'"
            ) from None
        if self.address == "local":
            start_local_cluster(self.jobs)  # unless the command line did already
            return _LOCAL.pop(self.jobs).result()
        try:
            return Client(self.address, timeout="15s"), None
        except (OSError, TimeoutError, ValueError) as exc:
            raise ExecutorError(
                f"--dask {self.address}: cannot reach the scheduler ({one_line(str(exc))}); "
                "start one with `dask scheduler` or give its tcp://host:8786 address"
            ) from None


_LOCAL: dict[int, Future[tuple[Any, Any]]] = {}


def start_local_cluster(jobs: int) -> None:
    """Start making a LocalCluster of `jobs` single-threaded workers (the lab imported
    as each starts) and its client, in a thread: the command line calls this before
    loading its scenarios, so both are ready together."""
    if jobs in _LOCAL:
        return
    made: Future[tuple[Any, Any]] = Future()

    def make() -> None:
        try:
            made.set_result(_local_cluster(jobs))
        except BaseException as exc:  # handed to whoever takes the cluster
            made.set_exception(exc)

    threading.Thread(target=make, name="cachelab-dask-start", daemon=True).start()
    _LOCAL[jobs] = made


def close_unused_clusters() -> None:
    """Close LocalClusters started for a run that never came (bad input, Ctrl-C)."""
    while _LOCAL:
        _, made = _LOCAL.popitem()
        with contextlib.suppress(BaseException):
            client, cluster = made.result()
            client.close()
            cluster.close()


def _local_cluster(jobs: int) -> tuple[Any, Any]:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ExecutorError(
            "--dask: dask.distributed is not installed; pip install 'dask[distributed]'"
        ) from None
    import dask

    # worker processes forked from the lab's fork server with dask and the lab imported,
    # not spawned: measured (2 workers) 0.9 against 1.45 s to start, 0.02 against 0.4 s
    # to close
    start_fork_server(["distributed"])
    dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"})
    cluster = LocalCluster(
        n_workers=jobs,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
        preload=WORKER_PRELOAD,  # imported as each worker starts, not at its first cell
    )
    return Client(cluster), cluster
