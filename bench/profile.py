"""Where the simulator's time goes: cProfile and py-spy on the `make perf` benchmark run.

Runs the lab's cache-aside run of bench/sim_throughput.py (1M requests by
default) twice: once under cProfile (deterministic; its per-call overhead
inflates functions that are called often) and once under py-spy, a sampling
profiler that does not slow the program down (its leaf lines show where the
interpreter actually is). Prints the top entries of each.

Usage: python bench/profile.py [--requests N] [--quick] [--top K]
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file shares its name with the standard library's `profile`, which cProfile
# imports: keep the script's own folder off the path until cProfile is loaded.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import argparse  # noqa: E402
import cProfile  # noqa: E402
import io  # noqa: E402
import pstats  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
from collections import Counter  # noqa: E402

sys.path.append(str(HERE))
from sim_throughput import run_lab  # noqa: E402


def cprofile_top(requests: int, top: int) -> str:
    """The top functions by own time, and by cumulative time, under cProfile."""
    profiler = cProfile.Profile()
    profiler.enable()
    wall, summary = run_lab(requests)
    profiler.disable()
    out = io.StringIO()
    out.write(f"cProfile: {summary['requests']:,} requests in {wall:.2f} s under the profiler\n")
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def pyspy_top(requests: int, top: int, rate: int) -> str:
    """The top leaf functions and leaf lines sampled by py-spy (if it is installed)."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(exe).exists():
        return "py-spy: not installed (pip install py-spy); skipped\n"
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        raw = Path(tmp) / "samples.txt"
        command = [exe, "record", "--format", "raw", "--rate", str(rate), "-o", str(raw)]
        child = [sys.executable, __file__, "--child", "--requests", str(requests)]
        done = subprocess.run([*command, "--", *child], capture_output=True, text=True)
        if done.returncode != 0 or not raw.exists():  # e.g. no ptrace permission
            return f"py-spy: failed ({done.stderr.strip().splitlines()[-1:]}); skipped\n"
        lines, functions, total = Counter[str](), Counter[str](), 0
        for row in raw.read_text().splitlines():
            stack, _, count = row.rpartition(" ")
            if "run_lab (" not in stack:  # imports and set-up: not the run
                continue
            n = int(count)
            total += n
            leaf = stack.split(";")[-1]
            lines[leaf] += n
            functions[leaf.split(" (")[0] + " (" + leaf.split(" (")[-1].split(":")[0] + ")"] += n
    out = io.StringIO()
    out.write(f"py-spy: {total:,} samples at {rate}/s inside the run\n")
    for title, counter in (("leaf functions", functions), ("leaf lines", lines)):
        out.write(f"\n  top {top} {title}:\n")
        for name, n in counter.most_common(top):
            out.write(f"  {100 * n / total:5.1f}%  {name}\n")
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="200k requests")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    n = 200_000 if args.quick else args.requests
    if args.child:  # the process py-spy samples
        run_lab(n)
        return
    print(cprofile_top(n, args.top))
    print(pyspy_top(n, args.top, args.rate))


if __name__ == "__main__":
    main()
