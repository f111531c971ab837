"""Independent references for the trace tests: trace writers that do not use lab.trace,
and exact LRU caches written as plain loops (by object count and by bytes)."""

from __future__ import annotations

import csv
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import zstandard

RECORD = np.dtype([("time", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")])


def next_access(ids: Sequence[int]) -> list[int]:
    """libCacheSim's field: 1-based position of the id's next request, -1 if none."""
    out = [-1] * len(ids)
    seen: dict[int, int] = {}
    for i in range(len(ids) - 1, -1, -1):
        out[i] = seen[ids[i]] + 1 if ids[i] in seen else -1
        seen[ids[i]] = i
    return out


def write_oracle(
    path: Path,
    times: Sequence[int],
    ids: Sequence[int],
    sizes: Sequence[int],
    nexts: Sequence[int] | None = None,
) -> Path:
    records = np.zeros(len(ids), dtype=RECORD)
    records["time"], records["id"], records["size"] = times, ids, sizes
    records["next"] = next_access(list(ids)) if nexts is None else nexts
    data = records.tobytes()
    path.write_bytes(zstandard.ZstdCompressor().compress(data) if path.suffix == ".zst" else data)
    return path


def write_csv(path: Path, header: Sequence[str] | None, rows: Iterable[Sequence[object]]) -> Path:
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        if header is not None:
            out.writerow(header)
        out.writerows(rows)
    return path


def zstd_copy(path: Path) -> Path:
    target = path.with_name(path.name + ".zst")
    target.write_bytes(zstandard.ZstdCompressor().compress(path.read_bytes()))
    return target


def zipf_keys(rng: np.random.Generator, keys: int, s: float, n: int) -> np.ndarray:
    """n draws of P(rank r) ~ 1/r**s over `keys` keys, ranks shuffled over ids."""
    weights = 1.0 / np.arange(1, keys + 1, dtype=np.float64) ** s
    ranks = rng.choice(keys, size=n, p=weights / weights.sum())
    return np.asarray(rng.permutation(keys)[ranks])


def lru_misses_by_count(keys: Iterable[int], capacity: int) -> list[bool]:
    """Exact LRU holding `capacity` objects: miss (True) or hit per request."""
    cache: OrderedDict[int, None] = OrderedDict()
    out = []
    for key in keys:
        if key in cache:
            cache.move_to_end(key)
            out.append(False)
            continue
        out.append(True)
        if capacity <= 0:
            continue
        if len(cache) >= capacity:
            cache.popitem(last=False)
        cache[key] = None
    return out


def lru_misses_by_bytes(keys: Iterable[int], sizes: Iterable[int], capacity: int) -> list[bool]:
    """Exact LRU holding `capacity` bytes, as libCacheSim's cache_get_base: a miss
    inserts the object after evicting least recently used ones until it fits; an object
    larger than the whole cache is not inserted (and evicts nothing)."""
    cache: OrderedDict[int, int] = OrderedDict()
    used = 0
    out = []
    for key, size in zip(keys, sizes, strict=True):
        if key in cache:
            cache.move_to_end(key)
            out.append(False)
            continue
        out.append(True)
        if size > capacity:
            continue
        while used + size > capacity:
            used -= cache.popitem(last=False)[1]
        cache[key] = size
        used += size
    return out
