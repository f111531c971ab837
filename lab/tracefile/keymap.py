"""Trace keys -> the lab's integer key ids, deterministically.

`dense` (the default) numbers distinct keys 0, 1, 2, ... in order of first
appearance. We chose it over hashing keys into a fixed range because a hash
into a range merges distinct keys (two objects sharing one cache entry raise
the hit ratio), while dense ids are collision-free, so a replay with exact LRU
gives, to the request, what an LRU over the original keys gives; and the
keyspace is exactly as large as the trace's distinct keys. The same trace
always gives the same ids.

Memory is bounded by the distinct keys, never by the trace's length: a numpy
open-addressing table of uint64 key -> int64 id at most half full, 32 to 64
bytes per distinct key (a Python dict would take about 100 plus the key
itself). Text keys (csv, txt) are first hashed to 64 bits with pandas'
`hash_array` (SipHash with a fixed key, so stable across runs): two distinct
text keys merge only on a 64-bit collision, with probability about n²/2^65
(3e-6 for ten million distinct keys).

`identity` uses integer keys as the lab's ids directly (they must lie in
0..keys-1): what `cachelab trace synth` writes, so a replay sees the very key
ids of the original run (sharding hashes the id, so renumbering would move
keys between nodes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from lab.tracefile.chunk import Chunk
from lab.tracefile.spec import TraceError

_EMPTY = -1


def key_hashes(keys: np.ndarray) -> np.ndarray:
    """uint64 keys as they are; text keys hashed to uint64 (stable, see above)."""
    if keys.dtype == np.uint64:
        return np.asarray(keys)
    if keys.dtype.kind in "iu":
        return keys.astype(np.uint64)
    return np.asarray(pd.util.hash_array(np.asarray(keys, dtype=object)), dtype=np.uint64)


def _mix(keys: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: ids that differ in a few bits land far apart in the table."""
    x = keys ^ (keys >> np.uint64(30))
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return np.asarray(x)


class KeyMap(Protocol):
    count: int
    """How many distinct ids were handed out (dense) or the keyspace size (identity)."""

    def map(self, chunk: Chunk) -> np.ndarray:
        """The int64 lab key id of each request of the chunk."""
        ...


class DenseKeys:
    """Distinct keys numbered 0, 1, 2, ... in order of first appearance."""

    def __init__(self, path: Path | str = "<trace>", max_keys: int | None = None) -> None:
        self.path = path
        self.max_keys = max_keys
        self.count = 0
        self._keys = np.zeros(1 << 12, dtype=np.uint64)
        self._ids = np.full(1 << 12, _EMPTY, dtype=np.int64)

    def map(self, chunk: Chunk) -> np.ndarray:
        raw = key_hashes(chunk.key)
        unique, first, inverse = np.unique(raw, return_index=True, return_inverse=True)
        ids = self._find(unique)
        new = np.flatnonzero(ids == _EMPTY)
        if new.size:
            new = new[np.argsort(first[new], kind="stable")]  # order of first appearance
            if self.max_keys is not None and self.count + new.size > self.max_keys:
                at = int(first[new[self.max_keys - self.count]])
                raise TraceError(
                    f"{self.path}: {chunk.where(at)}: more than {self.max_keys} distinct keys; "
                    "raise the limit or cut the trace shorter"
                )
            ids[new] = self.count + np.arange(new.size, dtype=np.int64)
            self.count += int(new.size)
            self._reserve(self.count)
            self._place(unique[new], ids[new])
        return np.asarray(ids[inverse.reshape(-1)])

    def _home(self, keys: np.ndarray) -> np.ndarray:
        return (_mix(keys) & np.uint64(self._ids.size - 1)).astype(np.int64)

    def _find(self, keys: np.ndarray) -> np.ndarray:
        """Each key's id, or _EMPTY if it has none yet (vectorized linear probing)."""
        found = np.full(keys.size, _EMPTY, dtype=np.int64)
        mask = self._ids.size - 1
        pending = np.arange(keys.size)
        slot = self._home(keys)
        while pending.size:
            ids = self._ids[slot]
            hit = (ids != _EMPTY) & (self._keys[slot] == keys[pending])
            found[pending[hit]] = ids[hit]
            going_on = (ids != _EMPTY) & ~hit  # occupied by another key: probe on
            pending, slot = pending[going_on], (slot[going_on] + 1) & mask
        return found

    def _place(self, keys: np.ndarray, ids: np.ndarray) -> None:
        """Insert distinct keys that are not in the table; one winner per free slot a round."""
        mask = self._ids.size - 1
        pending = np.arange(keys.size)
        slot = self._home(keys)
        while pending.size:
            free = np.flatnonzero(self._ids[slot] == _EMPTY)
            _, first = np.unique(slot[free], return_index=True)
            won = free[first]
            self._keys[slot[won]] = keys[pending[won]]
            self._ids[slot[won]] = ids[pending[won]]
            rest = np.ones(pending.size, dtype=bool)
            rest[won] = False
            pending, slot = pending[rest], (slot[rest] + 1) & mask

    def _reserve(self, count: int) -> None:
        """Keep the table at most half full (short probe runs)."""
        if 2 * count <= self._ids.size:
            return
        size = self._ids.size
        while 2 * count > size:
            size *= 2
        used = self._ids != _EMPTY
        keys, ids = self._keys[used], self._ids[used]
        self._keys = np.zeros(size, dtype=np.uint64)
        self._ids = np.full(size, _EMPTY, dtype=np.int64)
        self._place(keys, ids)

    @property
    def table_bytes(self) -> int:
        return int(self._keys.nbytes + self._ids.nbytes)


class IdentityKeys:
    """Integer keys used as the lab's ids, checked to lie in 0..keys-1."""

    def __init__(self, keys: int, path: Path | str = "<trace>") -> None:
        self.count = keys
        self.path = path

    def map(self, chunk: Chunk) -> np.ndarray:
        raw = chunk.key
        if raw.dtype.kind in "iu":
            ids = raw.astype(np.int64)
            bad = np.flatnonzero(
                (raw >= np.uint64(self.count))
                if raw.dtype.kind == "u"
                else (raw < 0) | (raw >= self.count)
            )
        else:
            ids = self._parse(chunk)
            bad = np.flatnonzero((ids < 0) | (ids >= self.count))
        if bad.size:
            at = int(bad[0])
            raise TraceError(
                f"{self.path}: {chunk.where(at)}: key {raw[at]} is outside the keyspace "
                f"0..{self.count - 1} (keys: identity); use keys: dense, or a keyspace of "
                "more keys"
            )
        return np.asarray(ids)

    def _parse(self, chunk: Chunk) -> np.ndarray:
        try:
            return np.asarray(chunk.key.astype(np.int64))
        except (ValueError, OverflowError):
            for i, key in enumerate(chunk.key):
                try:
                    int(key)
                except (ValueError, OverflowError):
                    raise TraceError(
                        f"{self.path}: {chunk.where(i)}: key {key!r} is not an integer id "
                        "(keys: identity); use keys: dense for text keys"
                    ) from None
            raise


def key_map(kind: str, path: Path | str, keys: int | None = None) -> KeyMap:
    """The key map a TraceSpec's `keys` names; identity needs the keyspace size."""
    if kind == "identity":
        if keys is None:
            raise ValueError("identity keys need the keyspace size")
        return IdentityKeys(keys, path)
    return DenseKeys(path)
