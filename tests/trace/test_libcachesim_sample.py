"""libCacheSim's own sample trace against the numbers its tests document.

The sample (data/cloudPhysicsIO.oracleGeneral.bin, 2.7 MB, in the libCacheSim
repository) is not shipped here: set LIBCACHESIM_DATA to a folder holding it
(for example a libCacheSim checkout's data/), or the test is skipped.
Numbers from libCacheSim's test/test_traceReader.c and test/test_evictionAlgo.c
(test_LRU, cache sizes 128 MiB .. 1 GiB in steps of 128 MiB; test_Belady at
1 GiB gives the unique objects and their bytes).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from lab.trace.stats import trace_stats
from lab.tracefile.readers import open_trace
from lab.tracefile.spec import TraceSpec
from tests.trace.refs import lru_misses_by_bytes, zstd_copy

NAME = "cloudPhysicsIO.oracleGeneral.bin"
MiB = 1 << 20
LRU_MISSES = [93374, 89783, 83572, 81722, 72494, 72104, 71972, 71704]
LRU_MISS_BYTES = [
    4214303232,
    4061242368,
    3778040320,
    3660569600,
    3100927488,
    3078128640,
    3075403776,
    3061662720,
]


@pytest.fixture(scope="module")
def sample() -> Path:
    folder = os.environ.get("LIBCACHESIM_DATA")
    path = Path(folder) / NAME if folder else None
    if path is None or not path.is_file():
        pytest.skip(f"set LIBCACHESIM_DATA to a folder with libCacheSim's {NAME}")
    return path


def test_reader_sees_libcachesims_first_and_last_requests(sample: Path) -> None:
    parts = list(open_trace(TraceSpec(path=sample)).chunks())
    ids = np.concatenate([p.key for p in parts])
    sizes = np.concatenate([p.size for p in parts])
    assert ids.size == 113872
    assert ids[:6].tolist() == [42932745, 42932746, 42932747, 40409911, 31954535, 6238199]
    assert sizes[:6].tolist() == [512, 512, 512, 6656, 6144, 57344]
    assert int(ids[-1]) == 42936150


def test_stats_match_libcachesims_counts(sample: Path) -> None:
    stats = trace_stats(TraceSpec(path=sample))
    assert stats.requests == 113872
    assert stats.request_bytes == 4368040448
    assert stats.unique_keys == 48974  # Belady at 1 GiB: only the compulsory misses
    assert stats.working_set_bytes == 2029769728  # and their bytes


def test_exact_lru_by_bytes_gives_libcachesims_miss_counts(sample: Path, tmp_path: Path) -> None:
    local = tmp_path / NAME
    local.write_bytes(sample.read_bytes())
    packed = zstd_copy(local)  # through the zstd stream reader
    parts = list(open_trace(TraceSpec(path=packed)).chunks())
    ids = np.concatenate([p.key for p in parts]).tolist()
    sizes = np.concatenate([p.size for p in parts]).tolist()
    for step, (misses, miss_bytes) in enumerate(zip(LRU_MISSES, LRU_MISS_BYTES, strict=True)):
        missed = lru_misses_by_bytes(ids, sizes, (step + 1) * 128 * MiB)
        assert sum(missed) == misses
        assert sum(s for s, m in zip(sizes, missed, strict=True) if m) == miss_bytes
