"""Sweep speed: the same cells on one worker, on two, and on a Dask LocalCluster; and
`cachelab bench` on every core against one.

Prints, each as a ratio measured in this one command (paired rounds, medians):
- 20 simulator cells (a sweep of 5 capacities x 2 strategies x 2 seeds) with
  `cachelab run --jobs 1` and `--jobs 2`: the speed-up (target >= 1.8x);
- the same with `--dask local --jobs 2` against `--jobs 2` (target <= 1.15x);
- `cachelab bench --jobs 1` against `cachelab bench` (every core; target
  <= 0.6x), QUICK (each scenario at a fifth) unless --full.

Every command is the real one, in a child process, with --force (nothing reused),
from start (interpreter, imports, workers) to end (results written). The machine's
load average is printed beside the figures: on a shared machine two workers get
less than two cores, and the CPU seconds the children used say how much.
Usage: python bench/sweep_speed.py [--rounds N] [--bench-rounds N] [--full]
                                   [--skip-bench | --only-bench]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]
SWEEP = {
    "name": "sweep-speed",
    "description": "20 simulator cells for bench/sweep_speed.py",
    "seeds": [1, 2],
    "duration": "60s",
    "warmup": "10s",
    "keyspace": {"keys": 20000, "value_size": "1KiB"},
    "workload": {
        "mix": {"read": 0.95},
        "keys": {"distribution": "zipf", "s": 0.99},
        "arrivals": {"process": "poisson", "rate": "2000/s"},
    },
    "topology": {"nodes": 1, "capacity": 1000},
    "strategies": {
        "invalidate": {"read": "cache-aside", "write": "invalidate", "ttl": "5m"},
        "update": {"read": "cache-aside", "write": "update", "ttl": "5m"},
    },
    "sweep": {"grid": {"topology.capacity": [250, 500, 1000, 2000, 4000]}},
}


def timed(args: list[str], workdir: Path) -> tuple[float, float]:
    """Wall seconds and the children's CPU seconds of one `cachelab` command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [str(BIN / "cachelab"), *args],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"cachelab {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


REAL_FIGURES = ("read_latency_p99", "cache_op_p99", "driver_lag_p99", "hit_ratio")
"""What a real-server cell measures that simulator work beside it could disturb."""


def real_figures(results: Path) -> dict[str, float]:
    """Medians over the real-server cells under `results` of REAL_FIGURES."""
    values: dict[str, list[float]] = {k: [] for k in REAL_FIGURES}
    for file in results.rglob("summary.json"):
        summary = json.loads(file.read_text())
        if summary.get("backend") == "sim":
            continue
        for key in REAL_FIGURES:
            if isinstance(summary.get(key), (int, float)):
                values[key].append(float(summary[key]))
    return {k: statistics.median(v) for k, v in values.items() if v}


def paired(
    variants: dict[str, list[str]],
    rounds: int,
    workdir: Path,
    real: dict[str, dict[str, float]] | None = None,
) -> dict[str, list[tuple[float, float]]]:
    """Each variant once per round, in turn (so load changes hit them alike); with
    `real`, the real-server cells' REAL_FIGURES of each variant's last round."""
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for r in range(rounds):
        for name, args in variants.items():
            results = workdir / f"results-{name}-{r}"
            out[name].append(timed([*args, "--results", str(results), "--force"], workdir))
            if real is not None:
                real[name] = real_figures(results)
            shutil.rmtree(results, ignore_errors=True)
            wall, cpu = out[name][-1]
            # worker processes are the fork server's children, not ours: their CPU is not
            # counted here, so only an in-process run's CPU is printed
            used = (
                f", {cpu:6.1f} s CPU"
                if "--jobs" in args
                and args[args.index("--jobs") + 1] == "1"
                and "--dask" not in args
                else ""
            )
            print(f"  round {r + 1} {name:<8} {wall:7.1f} s wall{used}", flush=True)
    return out


def median_wall(runs: list[tuple[float, float]]) -> float:
    return statistics.median(w for w, _ in runs)


def report(title: str, mine: str, base: str, runs: dict[str, list[tuple[float, float]]]) -> None:
    ratios = [m[0] / b[0] for m, b in zip(runs[mine], runs[base], strict=True)]
    print(
        f"{title}: {mine} {median_wall(runs[mine]):.1f} s, {base} {median_wall(runs[base]):.1f} s; "
        f"ratio {mine}/{base} median {statistics.median(ratios):.2f} "
        f"(rounds {', '.join(f'{r:.2f}' for r in ratios)})",
        flush=True,
    )


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="paired rounds (default 2)")
    parser.add_argument(
        "--bench-rounds", type=int, default=1, help="paired rounds of cachelab bench (default 1)"
    )
    parser.add_argument("--full", action="store_true", help="make bench at full length")
    parser.add_argument("--skip-bench", action="store_true", help="only the 20-cell sweep")
    parser.add_argument("--only-bench", action="store_true", help="only cachelab bench")
    args = parser.parse_args()
    print(f"machine: {load()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="cachelab-sweep-speed-") as tmp:
        work = Path(tmp)
        if not args.only_bench:
            sweep_speed(work, args.rounds)
        if args.skip_bench:
            return
        bench_speed(work, args.full, args.bench_rounds)


def sweep_speed(work: Path, rounds: int) -> None:
    """The 20-cell sweep: --jobs 1, --jobs 2, --dask local --jobs 2."""
    (work / "sweep.yaml").write_text(yaml.safe_dump(SWEEP, sort_keys=False))
    run = ["run", "sweep.yaml", "--quiet", "--no-progress"]
    print("20 simulator cells (5 capacities x 2 strategies x 2 seeds):", flush=True)
    cells = paired(
        {
            "jobs1": [*run, "--jobs", "1"],
            "jobs2": [*run, "--jobs", "2"],
            "dask2": [*run, "--dask", "local", "--jobs", "2"],
        },
        rounds,
        work,
    )
    cpu1 = statistics.median(c for _, c in cells["jobs1"])
    wall2 = median_wall(cells["jobs2"])
    print(f"after: {load()}")
    speedup = median_wall(cells["jobs1"]) / wall2
    print(f"sweep speed-up jobs1/jobs2: {speedup:.2f}x (target >= 1.8x)")
    print(
        f"  (the CPU the cells need, {cpu1:.0f} s, over the --jobs 2 wall time: "
        f"{cpu1 / wall2:.2f} cores were had on average)"
    )
    report("Dask overhead", "dask2", "jobs2", cells)
    print("  (target: dask2/jobs2 <= 1.15)")


def bench_speed(work: Path, full: bool, rounds: int = 1) -> None:
    """`cachelab bench` on every core against --jobs 1, and the real cells' figures."""
    bench = ["bench", "--scenarios", str(ROOT / "scenarios"), "--no-progress"]
    if not full:
        bench.append("--quick")
    print(f"cachelab bench{'' if full else ' --quick'} (every scenario):", flush=True)
    real: dict[str, dict[str, float]] = {}
    runs = paired({"all": bench, "jobs1": [*bench, "--jobs", "1"]}, rounds, work, real)
    print(f"after: {load()}")
    report("make bench", "all", "jobs1", runs)
    print("  (target: all cores / sequential <= 0.6)")
    print("real-server cells, medians (simulator work beside them vs none):")
    for key in REAL_FIGURES:
        if key in real.get("all", {}) and key in real.get("jobs1", {}):
            print(f"  {key:<18} all {real['all'][key]:.4g}  jobs1 {real['jobs1'][key]:.4g}")


if __name__ == "__main__":
    main()
