"""Each key's object size as a trace records it: the value size a replay gives the key.

A key keeps one size for the run (the lab's values have a size per key, not per
request): its last recorded size, as `trace stats` counts the working set. Sizes of
0 (a delete, or an object recorded without one) and unknown sizes say nothing about
the key; a key with no size at all gets the scenario's `keyspace.value_size`.

Memory is one int64 per distinct key: dense ids index an array; identity ids (any
integers below the keyspace) are kept as sorted (id, size) arrays, merged per chunk.
"""

from __future__ import annotations

import numpy as np

UNKNOWN = 0


def _last_per_key(ids: np.ndarray, size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ids of the known sizes, and each one's last size."""
    known = size > 0
    ids, size = ids[known], size[known]
    backwards, at = np.unique(ids[::-1], return_index=True)
    return backwards, size[::-1][at]


class KeySizes:
    """Key id -> its last recorded size (UNKNOWN if the trace gave it none)."""

    def __init__(self, dense: bool) -> None:
        self.dense = dense
        self.ids = np.zeros(0, dtype=np.int64)
        self.sizes = np.zeros(0, dtype=np.int64)

    def add(self, ids: np.ndarray, size: np.ndarray) -> None:
        seen, last = _last_per_key(ids, size)
        if not seen.size:
            return
        if self.dense:  # ids are 0, 1, 2, ...: the array is indexed by id
            top = int(seen[-1]) + 1
            if top > self.sizes.size:
                grown = np.zeros(max(top, 2 * self.sizes.size), dtype=np.int64)
                grown[: self.sizes.size] = self.sizes
                self.sizes = grown
            self.sizes[seen] = last
            return
        merged_ids = np.concatenate([seen, self.ids])  # this chunk's sizes first: they win
        merged = np.concatenate([last, self.sizes])
        self.ids, at = np.unique(merged_ids, return_index=True)
        self.sizes = merged[at]

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Each key's size, UNKNOWN where the trace gave none."""
        keys = np.asarray(keys, dtype=np.int64)
        out = np.full(keys.size, UNKNOWN, dtype=np.int64)
        if self.dense:
            inside = (keys >= 0) & (keys < self.sizes.size)
            out[inside] = self.sizes[keys[inside]]
            return out
        at = np.searchsorted(self.ids, keys)
        found = at < self.ids.size
        found[found] = self.ids[at[found]] == keys[found]
        out[found] = self.sizes[at[found]]
        return out

    def get(self, key: int) -> int:
        if self.dense:
            return int(self.sizes[key]) if 0 <= key < self.sizes.size else UNKNOWN
        at = int(np.searchsorted(self.ids, key))
        return int(self.sizes[at]) if at < self.ids.size and self.ids[at] == key else UNKNOWN

    @property
    def known(self) -> np.ndarray:
        """The sizes the trace gave, one per key that has one."""
        return self.sizes[self.sizes > 0]
