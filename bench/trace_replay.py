"""Trace replay: simulated requests per second against the synthetic stream, and peak
memory on a trace ten times the chunk size. `make perf` prints these after
bench/sim_throughput.py's figures (same process); runs alone too.

- throughput: bench/sim_throughput.py's scenario (1M requests, closed loop) written
  by `trace synth` as csv, then replayed order-only under the same clients: the
  very same run (the summaries are checked equal), so the difference is what
  reading the trace costs. CPU seconds, paired rounds, medians; the scan before
  the run (which checks every line once) is timed apart.
- memory: peak traced memory (tracemalloc, numpy included) of replays of
  oracleGeneral traces of 1x and 10x the chunk size (65,536 requests) over
  2,000 keys, against the synthetic stream of the same length.

Usage: python bench/trace_replay.py [--requests N] [--repeat R] [--quick]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

import lab.workload.stream as stream_module
from lab.runner import run_cell
from lab.scenario import Scenario, parse_scenario
from lab.trace.synth import synthesize
from lab.tracefile.oracle import RECORD
from lab.workload.stream import trace_info

WALL = {"wall_time", "config_hash", "versions", "lab_version", "throughput_wall"}


def _cpu(scenario: Scenario) -> tuple[float, dict[str, Any]]:
    gc.collect()
    start = time.process_time()
    result = run_cell(scenario, scenario.cells()[0])
    return time.process_time() - start, result.summary


def _replay_of(data: dict[str, Any], trace: Path) -> Scenario:
    workload = {
        "trace": {"path": str(trace), "keys": "identity", "speed": "order-only"},
        "arrivals": data["workload"]["arrivals"],
    }
    return parse_scenario({**data, "workload": workload}, "bench")


def throughput(data: dict[str, Any], requests: int, rounds: int, folder: Path) -> None:
    data = {**data, "requests": requests}
    synthetic = parse_scenario(data, "bench")
    trace = folder / "bench.csv"
    synthesize(synthetic, trace)
    replay = _replay_of(data, trace)
    start = time.process_time()
    trace_info(replay)  # the check of every line, once per scenario (cached for the runs)
    scan = time.process_time() - start
    syn_rates, rep_rates, ratios = [], [], []
    for i in range(rounds):
        order = [synthetic, replay] if i % 2 == 0 else [replay, synthetic]
        timed = {id(s): _cpu(s) for s in order}
        (syn_s, a), (rep_s, b) = timed[id(synthetic)], timed[id(replay)]
        assert {k: v for k, v in a.items() if k not in WALL} == {
            k: v for k, v in b.items() if k not in WALL
        }, "the replay is not the same run"
        syn_rates.append(requests / syn_s)
        rep_rates.append(requests / rep_s)
        ratios.append(rep_rates[-1] / syn_rates[-1])
    mb = trace.stat().st_size / 2**20
    print(f"trace replay, {requests:,} requests ({mb:.0f} MiB csv), {rounds} paired rounds:")
    print(f"  synthetic stream          {statistics.median(syn_rates):>9,.0f} simulated requests/s")
    print(
        f"  replayed trace            {statistics.median(rep_rates):>9,.0f} simulated requests/s"
        f"   (x{statistics.median(ratios):.2f}; identical summary)"
    )
    print(
        f"  scan before the runs      {requests / scan:>9,.0f} requests/s (every line checked once)"
    )


def _oracle_trace(path: Path, n: int, keys: int) -> Path:
    rng = np.random.default_rng(1)
    weights = 1.0 / np.arange(1, keys + 1) ** 0.99
    records = np.zeros(n, dtype=RECORD)
    records["time"] = np.arange(n) // 2  # 2 a second at 4000x: 8,000 requests/s
    records["id"] = rng.choice(keys, size=n, p=weights / weights.sum())
    records["size"] = 1024
    records["next"] = -1
    records.tofile(path)
    return path


def _peak(scenario: Scenario) -> float:
    stream_module._SCANNED.clear()
    gc.collect()
    tracemalloc.start()
    run_cell(scenario, scenario.cells()[0])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def memory(data: dict[str, Any], chunk: int, folder: Path) -> None:
    base = {
        **data,
        "keyspace": {"keys": 2_000, "value_size": "1KiB"},
        "topology": {"nodes": 1, "capacity": "400 keys"},
    }
    stream_module.TRACE_CHUNK = chunk
    print(f"trace replay memory, chunk {chunk:,} requests, 2,000 keys (peak, tracemalloc):")
    for times in (1, 10):
        n = times * chunk
        path = _oracle_trace(folder / f"m{times}.oracleGeneral.bin", n, 2_000)
        workload = {"trace": {"path": str(path), "speed": "4000x"}}
        replay = parse_scenario({**base, "requests": n, "workload": workload}, "bench")
        synthetic_workload = {"arrivals": {"rate": 8000}, "keys": {"s": 0.99}, "mix": {"read": 1}}
        synthetic = parse_scenario({**base, "requests": n, "workload": synthetic_workload}, "bench")
        print(
            f"  {times:>2}x chunk ({n:>9,} requests)  replay {_peak(replay):6.1f} MiB   "
            f"synthetic {_peak(synthetic):6.1f} MiB"
        )


def report(data: dict[str, Any], requests: int, rounds: int, quick: bool) -> None:
    """What `make perf` prints for trace replay."""
    with tempfile.TemporaryDirectory(prefix="cachelab-trace-bench-") as tmp:
        throughput(data, requests, rounds, Path(tmp))
        memory(data, 16_384 if quick else 65_536, Path(tmp))


def main() -> None:
    from sim_throughput import SCENARIO  # type: ignore[import-not-found]

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="paired rounds")
    parser.add_argument("--quick", action="store_true", help="200k requests, chunk 16,384")
    args = parser.parse_args()
    report(SCENARIO, 200_000 if args.quick else args.requests, args.repeat, args.quick)


if __name__ == "__main__":
    main()
