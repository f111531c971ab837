"""A trace is read in chunks: peak memory stays flat as the trace grows past many chunks.

tracemalloc counts allocations (numpy's included), not time, so this holds on a
busy machine; bench/trace_read.py prints the same figures at full chunk size.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from lab.trace import reuse
from lab.trace.stats import trace_stats
from lab.tracefile.spec import TraceSpec
from tests.trace.refs import write_csv, write_oracle, zstd_copy

CHUNK = 2048
KEYS = 500


def peak_bytes(path: Path) -> int:
    tracemalloc.start()
    try:
        trace_stats(TraceSpec(path=path), chunk=CHUNK)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def traces(tmp_path: Path, chunks: int) -> dict[str, Path]:
    rng = np.random.default_rng(chunks)
    n = CHUNK * chunks
    ids = rng.integers(0, KEYS, n)
    oracle = write_oracle(tmp_path / f"t{chunks}.bin", np.arange(n) // 100, ids, ids + 1)
    rows = zip((np.arange(n) / 100).tolist(), ids.tolist(), (ids + 1).tolist(), strict=True)
    text = write_csv(tmp_path / f"t{chunks}.csv", ["time", "key", "size"], rows)
    return {"oracleGeneral": oracle, "csv.zst": zstd_copy(text)}


@pytest.mark.parametrize("kind", ["oracleGeneral", "csv.zst"])
def test_peak_memory_does_not_grow_with_the_trace(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reuse, "_MIN_TREE", 1024)  # the reuse tree compacts in both runs
    small, large = traces(tmp_path, 10)[kind], traces(tmp_path, 40)[kind]
    small_peak, large_peak = peak_bytes(small), peak_bytes(large)
    assert large_peak <= 1.1 * small_peak + 64 * 1024
    uncompressed = CHUNK * 40 * 24 if kind == "oracleGeneral" else None
    if uncompressed:
        assert large_peak < uncompressed / 2  # not the whole trace
