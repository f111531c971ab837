"""Which cache node owns a key: ketama (memcached clients), hash slots (Redis
Cluster) or plain modulo. Shared by the simulated and the real backend so both
place every key on the same node.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import math
from array import array
from collections.abc import Callable, Sequence
from typing import Literal, overload

import numpy as np

from lab.core.values import key_name as key_name  # re-exported: backends import it from here

Sharding = Literal["ketama", "slots", "modulo"]
SLOTS = 16384


def node_name(index: int) -> str:
    """The name a node is hashed under on the ketama ring."""
    return f"node-{index}"


class KetamaRing:
    """libketama's continuum: 160 points per equally weighted node, md5 based."""

    def __init__(self, nodes: list[str]) -> None:
        points: list[tuple[int, int]] = []
        for index, name in enumerate(nodes):
            for i in range(40):
                d = hashlib.md5(f"{name}-{i}".encode()).digest()
                for h in range(4):
                    point = int.from_bytes(d[h * 4 : h * 4 + 4], "little")
                    points.append((point, index))
        points.sort()
        self._points = [p for p, _ in points]
        self._owners = [o for _, o in points]

    def owner(self, name: str) -> int:
        h = int.from_bytes(hashlib.md5(name.encode()).digest()[:4], "little")
        i = bisect.bisect_left(self._points, h)
        return self._owners[i if i < len(self._points) else 0]


def _crc16(data: bytes) -> int:
    """CRC16-XMODEM, the checksum Redis Cluster uses for key slots."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def key_slot(name: str) -> int:
    """Redis Cluster's slot of a key, honouring {hash tags}."""
    raw = name.encode()
    start = raw.find(b"{")
    if start != -1:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            raw = raw[start + 1 : end]
    return _crc16(raw) % SLOTS


def slot_ranges(nodes: int) -> list[tuple[int, int]]:
    """Contiguous slot ranges per primary, split exactly as `redis-cli --cluster create`
    does (its float32 cursor and lround included), so sim and real agree on owners."""
    per = np.float32(SLOTS) / np.float32(nodes)
    cursor = np.float32(0.0)
    first = 0
    ranges = []
    for i in range(nodes):
        last = math.floor(float(np.float32(cursor + per - np.float32(1))) + 0.5)  # lround
        if last > SLOTS or i == nodes - 1:
            last = SLOTS - 1
        last = max(last, first)
        ranges.append((first, last))
        first = last + 1
        cursor = np.float32(cursor + per)
    return ranges


def hash_tag(name: str) -> str:
    """The part of a key that decides its node: the text inside the first {...} if any
    (Redis Cluster's hash tags, also honoured by client-side hashing here, as twemproxy
    does), so `lease:{key:5}` lives with `key:5`."""
    start = name.find("{")
    if start != -1:
        end = name.find("}", start + 1)
        if end > start + 1:
            return name[start + 1 : end]
    return name


def router(kind: Sharding, nodes: int) -> Callable[[str], int]:
    """A function from a key's name to the index of the node that owns it."""
    if nodes == 1:
        return lambda name: 0
    if kind == "slots":
        owner_of_slot = [0] * SLOTS
        for index, (first, last) in enumerate(slot_ranges(nodes)):
            owner_of_slot[first : last + 1] = [index] * (last - first + 1)
        return lambda name: owner_of_slot[key_slot(name)]
    if kind == "ketama":
        ring = KetamaRing([node_name(i) for i in range(nodes)])
        return lambda name: ring.owner(hash_tag(name))
    return lambda name: (
        int.from_bytes(hashlib.md5(hash_tag(name).encode()).digest()[:4], "little") % nodes
    )


MEMO_KEYS = 1 << 23
"""Keyspaces up to this size remember each int key's owner once computed (2 bytes a key);
larger ones compute it on every lookup, so nothing costs O(keyspace)."""
UNKNOWN = 0xFFFF
"""A memo entry not computed yet (node indexes stay below 1024)."""


class OwnerTable(Sequence[int]):
    """The owner node of every int key 0..keys-1, computed when first asked for.

    Nothing is computed up front: a run touching a few keys of a huge keyspace pays
    for those keys only. `memo` is the lazily filled table the simulator's hot path
    indexes directly (`UNKNOWN` until computed; empty above MEMO_KEYS)."""

    __slots__ = ("keys", "memo", "route")

    def __init__(
        self, kind: Sharding, nodes: int, keys: int, route: Callable[[str], int] | None = None
    ) -> None:
        self.keys = keys
        self.route = route if route is not None else router(kind, nodes)
        filler = 0 if nodes == 1 else UNKNOWN  # one node owns everything: nothing to compute
        self.memo = array("H", [filler]) * keys if keys <= MEMO_KEYS else array("H")

    def __len__(self) -> int:
        return self.keys

    @overload
    def __getitem__(self, key: int) -> int: ...
    @overload
    def __getitem__(self, key: slice) -> list[int]: ...
    def __getitem__(self, key: int | slice) -> int | list[int]:
        if isinstance(key, slice):
            return [self[k] for k in range(*key.indices(self.keys))]
        if type(key) is not int:
            raise TypeError(f"owner tables hold int keys, not {type(key).__name__}")
        if not 0 <= key < self.keys:
            raise IndexError(key)
        return self.owner(key)

    def owner(self, key: int) -> int:
        """Owner of int key `key` (0 <= key < keys), remembered when the memo covers it."""
        memo = self.memo
        if key < len(memo):
            owner = memo[key]
            if owner == UNKNOWN:
                owner = memo[key] = self.route(key_name(key))
            return owner
        return self.route(key_name(key))


@functools.lru_cache(maxsize=4)
def lazy_owner_table(kind: Sharding, nodes: int, keys: int) -> OwnerTable:
    """Owner node of every int key 0..keys-1, computed lazily (cached: all strategies of
    a scenario share one table, and what one run computed the next one reuses)."""
    return OwnerTable(kind, nodes, keys)
