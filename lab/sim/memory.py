"""Bytes per cache entry as Redis 7 counts them (`used_memory`), by formula.

`topology.capacity: 64MiB` is a budget of data memory: what the keys cost a Redis 7.0
server on top of an empty one (clients' buffers are not data; memreal's controller keeps
them out of the budget on real servers). For one string key, Redis allocates (jemalloc
5, 16-byte quantum; `zmalloc` counts each allocation's size class, `je_malloc_usable_size`):

- the **dict entry** of the main dict (`dictEntry`: key, value, next = 24 B -> 32;
  in cluster mode 7.0 adds 16 B of slot-list metadata -> 48);
- the **key**, an sds copy of the name (`dbAdd` -> `sdsdup`): header 1 B (`sdshdr5`,
  names under 32 B), 3 B (under 256 B) or 5 B, plus the name and a NUL;
- the **value** object: names up to 44 B are EMBSTR, one allocation of robj (16 B) +
  `sdshdr8` (3 B) + bytes + NUL; longer ones are RAW, a 16-B robj and an exact sds
  (`sdshdr8` under 256 B, `sdshdr16` under 64 KiB, else `sdshdr32`: 3/5/9 B header);
- with a TTL, an **expires entry** (another 24-B dictEntry -> 32; it shares the key);
- the **hash tables**: 8 B per bucket of the main and the expires dict, a power of two
  that doubles when the dict is full (kept by `HashTable`, not per entry).

Each allocation is rounded up to jemalloc's size class (`size_class`). The value's
length is what the codec writes (`lab/codec.py`): the scenario's size, or the header
if that is longer. `tests/real/test_memory_formula.py` checks the formula against a
real redis-server (`used_memory` per key, 16 B .. 64 KiB, with and without TTL).
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.core import Key, Versioned
from lab.core.values import key_name

QUANTUM = 16
"""jemalloc's smallest spacing on x86-64 (lg_quantum 4); 8 B is a class of its own."""
DICT_ENTRY = 24
CLUSTER_ENTRY_METADATA = 16
ROBJ = 16
EMBSTR_LIMIT = 44
POINTER = 8
DICT_MIN_BUCKETS = 4
MAX_LOAD = 1.618
"""Redis 7.0 lets a dict stay unexpanded while keys/buckets < 1.618 if expanding would
push `used_memory` over `maxmemory` (`dictExpandAllowed`)."""


def size_class(n: int) -> int:
    """jemalloc 5's size class for `n` bytes: 8, multiples of 16 to 128, then four
    classes per doubling (160, 192, 224, 256, 320, ...), large classes alike."""
    if n <= 8:
        return 8
    if n <= 128:
        return (n + QUANTUM - 1) & ~(QUANTUM - 1)
    step = 1 << ((n - 1).bit_length() - 3)  # a quarter of the power of two below
    return (n + step - 1) // step * step


def sds_header(length: int, *, small: bool) -> int:
    """An sds header for a string of `length` bytes (`sdsReqType`); `small`: the
    `sdshdr5` Redis picks for strings under 32 B created by `sdsnewlen`."""
    if small and length < 32:
        return 1
    if length < 1 << 8:
        return 3
    if length < 1 << 16:
        return 5
    return 9


def sds_bytes(length: int, *, small: bool = True) -> int:
    return size_class(sds_header(length, small=small) + length + 1)


def value_bytes(length: int) -> int:
    """A string value object of `length` bytes: EMBSTR up to 44 B, else robj + sds."""
    if length <= EMBSTR_LIMIT:
        return size_class(ROBJ + 3 + length + 1)
    return size_class(ROBJ) + sds_bytes(length, small=False)


def encoded_length(value: Versioned) -> int:
    """The bytes a server stores for `value` (`lab.codec.encode`'s length, not built)."""
    size = value.size
    if size >= 96:  # the longest header ("<version>:<size>:<expiry>:<delta>:") is shorter
        return size
    expiry, delta = value.expiry, value.delta
    if expiry or delta:
        head = len(b"%d:%d:%a:%a:" % (value.version, size, expiry, delta))
    else:
        head = len(b"%d:%d:0:0:" % (value.version, size))
    return size if size > head else head


@dataclass(frozen=True)
class RedisMemory:
    """Redis 7.0's bytes for one entry (see the module docstring)."""

    cluster: bool = False
    name = "redis-7.0 formula (jemalloc size classes)"
    counts_replies = True
    """Replies waiting to be written count against `maxmemory` and evict keys (Redis
    7.0; measured: `lab/sim/replies.py`). Modelled under a byte budget."""

    def entry(self, key_length: int, value_length: int, ttl: bool) -> int:
        """Bytes of one key: dict entry, key sds, value object, expires entry."""
        dict_entry = DICT_ENTRY + (CLUSTER_ENTRY_METADATA if self.cluster else 0)
        total = size_class(dict_entry) + sds_bytes(key_length) + value_bytes(value_length)
        return total + size_class(DICT_ENTRY) if ttl else total

    def table(self) -> HashTable:
        """An empty main or expires dict (its bucket array is counted, not per entry)."""
        return HashTable()


class HashTable:
    """A dict's bucket array: a power of two, doubled when the dict is full (or, near
    `maxmemory`, once keys/buckets reaches 1.618), shrunk when under 10% full."""

    def __init__(self) -> None:
        self.buckets = 0

    @property
    def bytes(self) -> int:
        return self.buckets * POINTER

    def before_add(self, count: int, headroom: float) -> int:
        """The change in bytes when a dict holding `count` keys gets one more;
        `headroom`: bytes left under the budget (expansion must fit or be overdue)."""
        buckets = self.buckets
        if count < buckets:
            return 0
        if buckets == 0:
            self.buckets = DICT_MIN_BUCKETS
            return self.bytes
        grown = buckets * 2
        if grown * POINTER > headroom and count < buckets * MAX_LOAD:
            return 0
        self.buckets = grown
        return (grown - buckets) * POINTER

    def after_remove(self, count: int) -> int:
        """The change in bytes when the dict is down to `count` keys (`htNeedsResize`:
        under 10% full shrinks to the power of two that holds them; Redis does it in its
        cron, at most 100 ms later)."""
        buckets = self.buckets
        if buckets <= DICT_MIN_BUCKETS or count * 10 >= buckets:
            return 0
        shrunk = max(DICT_MIN_BUCKETS, 1 << max(0, (count - 1).bit_length()))
        self.buckets = shrunk
        return (shrunk - buckets) * POINTER


class Accounting:
    """One node's data memory under a `RedisMemory` model: every entry's bytes, and
    the main and expires dicts' bucket arrays. `budget` (bytes, or None) only decides
    whether a dict may grow near the limit, as Redis 7.0 does."""

    def __init__(self, model: RedisMemory, budget: int | None = None) -> None:
        self.model = model
        self.budget = budget
        self.used = 0
        self.in_flight = 0
        """Bytes of replies the node holds while the current command runs (set around
        each command when replies in flight are modelled, `lab/sim/replies.py`): they
        count against the budget as Redis 7.0 counts them against `maxmemory`."""
        self._entries: dict[Key, tuple[int, bool]] = {}  # key -> (bytes, has a TTL)
        self._main = model.table()
        self._expires = model.table()
        self._with_ttl = 0

    @property
    def tables(self) -> tuple[HashTable, HashTable]:
        """The main and the expires dict's bucket arrays."""
        return self._main, self._expires

    def entry_bytes(self, key: Key) -> int:
        held = self._entries.get(key)
        return held[0] if held is not None else 0

    def add(self, key: Key, value: Versioned, ttl: bool) -> None:
        """`key` now holds `value` (replacing what it held)."""
        entries = self._entries
        old = entries.get(key)
        if old is not None:
            self._drop(key, old)
        else:
            self.used += self._main.before_add(len(entries), self._headroom())
        if ttl:
            self.used += self._expires.before_add(self._with_ttl, self._headroom())
            self._with_ttl += 1
        size = self.model.entry(len(key_name(key)), encoded_length(value), ttl)
        entries[key] = (size, ttl)
        self.used += size

    def remove(self, key: Key) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._drop(key, old)
            self.used += self._main.after_remove(len(self._entries))

    def _drop(self, key: Key, old: tuple[int, bool]) -> None:
        self.used -= old[0]
        if old[1]:
            self._with_ttl -= 1
            self.used += self._expires.after_remove(self._with_ttl)

    def _headroom(self) -> float:
        return float("inf") if self.budget is None else self.budget - self.used - self.in_flight


SIZE_BUCKETS = (64, 256, 1024, 4096, 16384, 65536)
"""Upper bounds (bytes) of the value-size classes evictions are counted in."""


def size_label(limit: int | None) -> str:
    """`<=1KiB`, `>64KiB`: a bucket's name in summaries."""

    def human(n: int) -> str:
        return f"{n // 1024}KiB" if n >= 1024 else f"{n}B"

    return f">{human(SIZE_BUCKETS[-1])}" if limit is None else f"<={human(limit)}"


class SizeTally:
    """Counts of values by size class (evictions by value size), and their total."""

    def __init__(self) -> None:
        self.counts = [0] * (len(SIZE_BUCKETS) + 1)
        self.bytes = 0

    def add(self, size: int) -> None:
        self.bytes += size
        for i, limit in enumerate(SIZE_BUCKETS):
            if size <= limit:
                self.counts[i] += 1
                return
        self.counts[-1] += 1

    def merge(self, other: SizeTally) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.bytes += other.bytes

    def as_dict(self) -> dict[str, int]:
        limits: list[int | None] = [*SIZE_BUCKETS, None]
        return {size_label(limit): n for limit, n in zip(limits, self.counts, strict=True)}
