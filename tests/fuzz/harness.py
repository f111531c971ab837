"""Run one scenario file through `cachelab run` as a user would, and judge the outcome.

Every hostile input must end one of two ways:
- a clean refusal: exit status 2, exactly one line on stderr naming the file
  (`cachelab: error: <file>...`), nothing on stdout, nothing written;
- a run that completes within its estimate: exit status 0, runs written, the CPU
  time and the traced peak memory within what `lab.limits` estimated for it.
Anything else (a traceback, another exit status, a second line, a hang) fails.

Cases run in this process (hundreds of them would take minutes as subprocesses);
an alarm turns a hang into a failure naming the case.
"""

from __future__ import annotations

import contextlib
import io
import signal
import time
import traceback
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import lab.report.table
import lab.results
import lab.runner  # imported before measuring: the estimate's base covers the process
from lab.cli import main
from lab.limits import BASE_MEMORY, estimate
from lab.scenario import ScenarioError, load_scenario

assert lab.report.table and lab.results and lab.runner

HANG = 300.0
"""Seconds after which a case counts as a hang (generous: CPU is shared)."""
FUZZ_LIMITS = {"memory": "1GiB", "time": "20s"}
"""Limits the generated cases run under, so whatever is accepted stays small."""


class Hang(Exception):
    """A case took longer than HANG seconds."""


@dataclass
class Outcome:
    """What `cachelab run` did with one file."""

    path: Path
    status: int | str
    stdout: str
    stderr: str
    written: bool
    cpu: float
    peak: int
    estimate_seconds: float = 0.0
    estimate_memory: float = 0.0

    def problems(self) -> list[str]:
        """Why this outcome is not acceptable (empty when it is)."""
        if isinstance(self.status, str):
            return [f"crashed: {self.status}"]
        if self.status == 2:
            return self._refusal_problems()
        if self.status == 0:
            return self._run_problems()
        return [f"exit status {self.status}: {self.stderr!r}"]

    def _refusal_problems(self) -> list[str]:
        found = []
        lines = self.stderr.splitlines()
        if len(lines) != 1 or not self.stderr.endswith("\n"):
            found.append(f"refusal is not one line: {self.stderr!r}")
        elif not lines[0].startswith(f"cachelab: error: {self.path}"):
            found.append(f"refusal does not name the file first: {lines[0]!r}")
        if self.stdout:
            found.append(f"refusal printed to stdout: {self.stdout[:200]!r}")
        if self.written:
            found.append("refusal wrote results")
        return found

    def _run_problems(self) -> list[str]:
        found = []
        if "written under" not in self.stderr or "Traceback" in self.stderr:
            found.append(f"run without its summary line: {self.stderr[-500:]!r}")
        if not self.written:
            found.append("run wrote nothing")
        if self.cpu > self.estimate_seconds:
            found.append(f"took {self.cpu:.2f} s of CPU, estimated {self.estimate_seconds:.2f}")
        if self.peak > self.estimate_memory - BASE_MEMORY:
            found.append(
                f"peaked at {self.peak / 1e6:.1f} MB traced, estimated "
                f"{(self.estimate_memory - BASE_MEMORY) / 1e6:.1f} MB above the process"
            )
        return found


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang(f"no answer after {HANG:.0f} s")


def attempt(path: Path, workdir: Path) -> Outcome:
    """`cachelab run <path> --backend sim --results <workdir>/out` in this process."""
    out = workdir / "out"
    stdout, stderr = io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG)
    tracemalloc.start()
    cpu = time.process_time()
    status: int | str
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            args = ["run", str(path), "--backend", "sim", "--results", str(out), "--jobs", "1"]
            status = main([*args, "--no-progress"])
    except SystemExit as exc:  # argparse
        status = exc.code if isinstance(exc.code, int) else str(exc.code)
    except BaseException as exc:
        status = (
            "".join(traceback.format_exception_only(exc)).strip() + "\n" + traceback.format_exc()
        )
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        cpu = time.process_time() - cpu
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    written = out.exists() and any(out.iterdir())
    outcome = Outcome(path, status, stdout.getvalue(), stderr.getvalue(), written, cpu, peak)
    if status == 0:
        with contextlib.suppress(ScenarioError):
            scenario = load_scenario(path)
            found = estimate(scenario, scenario.cells(backends=["sim"]))
            outcome.estimate_seconds, outcome.estimate_memory = found.seconds, found.memory
    return outcome
