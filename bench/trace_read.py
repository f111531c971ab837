"""Trace reading: throughput of the chunked readers and their peak memory.

Generates its traces (nothing is shipped): zipf 0.9 keys over 200,000 ids,
sizes 1-10,000 bytes, in oracleGeneral (plain and .zst) and csv (plain and
.zst), in a temporary folder removed at the end. Prints:
- read + dense key mapping, requests per second, per format; against the
  in-memory reference in the same process (np.fromfile of the whole file and
  pandas.factorize of its ids), and the ratio;
- `trace stats` (exact reuse distances; and SHARDS at rate 0.01) requests per second;
- peak traced memory (tracemalloc, numpy's buffers included) of `trace stats`
  on traces of 1x, 10x and 40x the chunk size over 5,000 keys (all seen in
  the first chunk): flat in the length of the trace, which is the target
  (issue 14); then the same 40x trace over 200,000 keys, since what memory
  does grow with is the distinct keys (bytes per distinct key printed).

Usage: python bench/trace_read.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import shutil
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import zstandard

from lab.trace.stats import trace_stats
from lab.tracefile.keymap import DenseKeys
from lab.tracefile.oracle import RECORD
from lab.tracefile.readers import CHUNK, open_trace
from lab.tracefile.spec import TraceSpec

KEYS = 200_000


def make_trace(folder: Path, n: int, seed: int = 1, keys: int = KEYS) -> dict[str, Path]:
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, keys + 1) ** 0.9
    ids = rng.choice(keys, size=n, p=weights / weights.sum()) * 7919 + 10**9
    records = np.zeros(n, dtype=RECORD)
    records["time"] = np.arange(n) // 1000
    records["id"] = ids
    records["size"] = (ids % 10_000) + 1
    records["next"] = -1
    out = {"oracleGeneral": folder / f"t{n}.oracleGeneral.bin", "csv": folder / f"t{n}.csv"}
    records.tofile(out["oracleGeneral"])
    frame = pd.DataFrame({"time": records["time"], "key": ids, "size": records["size"]})
    frame.to_csv(out["csv"], index=False)
    for kind in ("oracleGeneral", "csv"):
        packed = out[kind].with_name(out[kind].name + ".zst")
        with out[kind].open("rb") as src, packed.open("wb") as dst:
            zstandard.ZstdCompressor().copy_stream(src, dst)
        out[f"{kind}.zst"] = packed
    return out


def timed(fn: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def read_and_map(path: Path) -> None:
    keys = DenseKeys(path)
    for part in open_trace(TraceSpec(path=path)).chunks():
        keys.map(part)


def reference(path: Path) -> None:
    """Everything in memory at once: the fastest way numpy and pandas know."""
    records = np.fromfile(path, dtype=RECORD)
    pd.factorize(records["id"])


def peak(path: Path) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        trace_stats(TraceSpec(path=path))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller traces")
    args = parser.parse_args()
    n = 250_000 if args.quick else 1_000_000
    folder = Path(tempfile.mkdtemp(prefix="cachelab-bench-trace-"))
    try:
        traces = make_trace(folder, n)
        print(f"read + map keys, {n:,} requests, {KEYS:,} key ids (zipf 0.9):")
        ref = timed(lambda: reference(traces["oracleGeneral"]))
        print(f"  reference (np.fromfile + pd.factorize, all in memory): {n / ref:>12,.0f} req/s")
        for kind, path in traces.items():
            took = timed(lambda p=path: read_and_map(p))  # type: ignore[misc]
            size = path.stat().st_size / 2**20
            print(
                f"  {kind:<18} {size:7.1f} MiB  {n / took:>12,.0f} req/s  "
                f"ratio {ref / took:.2f} of the reference"
            )
        for path in traces.values():
            path.unlink()
        stats_n = n // 4
        small = make_trace(folder, stats_n, seed=2)["oracleGeneral"]
        exact = timed(lambda: trace_stats(TraceSpec(path=small)))
        shards = timed(lambda: trace_stats(TraceSpec(path=small), sample_rate=0.01))
        print(f"trace stats, {stats_n:,} requests:")
        print(f"  exact reuse distances (Fenwick)  {stats_n / exact:>12,.0f} req/s")
        print(f"  SHARDS at rate 0.01              {stats_n / shards:>12,.0f} req/s")
        print(f"peak traced memory of trace stats (chunk {CHUNK:,} requests):")
        base = None
        for multiple in (1, 10, 40):
            path = make_trace(folder, CHUNK * multiple, seed=3, keys=5000)["oracleGeneral"]
            used = peak(path)
            base = base or used
            print(
                f"  {multiple:>2}x chunk ({CHUNK * multiple:>9,} requests, 5,000 keys, "
                f"{path.stat().st_size / 2**20:5.1f} MiB): {used / 2**20:5.1f} MiB peak, "
                f"{used / base:.2f}x the 1x run"
            )
        path = make_trace(folder, CHUNK * 40, seed=3)["oracleGeneral"]
        distinct = trace_stats(TraceSpec(path=path)).unique_keys
        used = peak(path)
        print(
            f"  40x chunk over {KEYS:,} key ids ({distinct:,} seen): {used / 2**20:5.1f} MiB peak, "
            f"{(used - base) / distinct:.0f} bytes per distinct key above the 1x run"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
