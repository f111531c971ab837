"""memcached's memory, modelled: the slab allocator and the segmented LRU (hot/warm/cold).

Followed from memcached 1.6 (slabs.c, items.c), defaults as `memcached` runs:
- an item takes `48 + key + 1 + (4 if flags) + value + 2 + 8 (CAS)` bytes
  (`item_make_header`), in the smallest slab class whose chunk fits it;
- class chunk sizes start at `48 + min_chunk` (`-n`), aligned to 8 bytes,
  each the previous times the growth factor (`-f`, truncated to an integer)
  while below half a page, and a last class of half a page (`slabs_init`);
- memory comes in 1 MiB pages, given to a class when it has no free chunk,
  while the pages taken stay within `-m`; a class's first page is always
  given (`do_slabs_newslab`). With slab_automove off a page never moves to
  another class: memory calcifies in the classes that took it first;
- each class has three LRUs. A new item goes to the head of HOT. A get marks
  it FETCHED, a second one ACTIVE (in HOT or WARM only its time is bumped; in
  COLD it moves to the head of WARM). The LRU maintainer (`lru_maintainer_juggle`,
  run here after each store into the class) moves HOT's tail to WARM if ACTIVE,
  else to COLD when HOT holds more than 20% of the class's bytes or is older
  than 0.2 x COLD's tail age; WARM's tail back to WARM's head if ACTIVE, else to
  COLD above 40% or 2 x COLD's age; an ACTIVE COLD tail goes to WARM;
- a store that finds no free chunk and no page evicts COLD's tail (expired
  tails are reclaimed first), or pushes HOT's tail to COLD when COLD is empty,
  up to 10 times (`do_item_alloc_pull`), else it fails (out of memory);
- expiry is lazy on access (and when a tail is examined); the clock ticks in
  whole seconds (`lab.exptime`).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

HEADER: Final = 48
"""sizeof(item) on 64-bit."""
CAS: Final = 8
PAGE: Final = 1 << 20
CHUNK_ALIGN: Final = 8
HOT, WARM, COLD = 0, 1, 2
HOT_LRU_PCT, WARM_LRU_PCT = 20, 40
HOT_MAX_FACTOR, WARM_MAX_FACTOR = 0.2, 2.0
TAIL_TRIES: Final = 5
ALLOC_TRIES: Final = 10
JUGGLES: Final = 500


def item_size(key_len: int, value_len: int, *, flags: bool = False, cas: bool = True) -> int:
    """Bytes of one item: header, key + NUL, flags if nonzero, value + CRLF, CAS."""
    return HEADER + key_len + 1 + (4 if flags else 0) + value_len + 2 + (CAS if cas else 0)


def chunk_sizes(growth_factor: float = 1.25, min_chunk: int = 48, page: int = PAGE) -> list[int]:
    """Chunk size of each slab class, class 1 first (`memcached -vv` prints the same)."""
    chunk_max = page // 2
    sizes: list[int] = []
    size = HEADER + min_chunk
    while len(sizes) < 62 and size < chunk_max / growth_factor:
        if size % CHUNK_ALIGN:
            size += CHUNK_ALIGN - size % CHUNK_ALIGN
        sizes.append(size)
        size = int(size * growth_factor)
    sizes.append(chunk_max)
    return sizes


class Item:
    """One stored item: where it lives and its LRU flags."""

    __slots__ = ("active", "cls", "exptime", "fetched", "key", "lru", "size", "time", "value")

    def __init__(self, key: object, value: object, size: int, cls: int, now: int, exp: float):
        self.key, self.value, self.size, self.cls = key, value, size, cls
        self.lru, self.time, self.exptime = HOT, now, exp
        self.fetched = self.active = False


@dataclass
class SlabClass:
    chunk: int
    per_page: int
    pages: int = 0
    free: int = 0


class SlabCache:
    """Items in slab classes with a segmented LRU per class (memcached's memory)."""

    def __init__(
        self, memory: int, growth_factor: float = 1.25, min_chunk: int = 48, page: int = PAGE
    ) -> None:
        self.limit = memory
        self.page = page
        self.classes = [
            SlabClass(c, page // c) for c in chunk_sizes(growth_factor, min_chunk, page)
        ]
        self.malloced = 0
        self.items: dict[object, Item] = {}
        n = len(self.classes)
        self.lrus: list[list[OrderedDict[object, Item]]] = [
            [OrderedDict(), OrderedDict(), OrderedDict()] for _ in range(n)
        ]
        self.lru_bytes = [[0, 0, 0] for _ in range(n)]
        self.bytes = 0
        self.evictions = 0
        self.reclaimed = 0
        self.out_of_memory = 0
        self.on_evict: Callable[[object], None] | None = None
        """Called with each evicted item's value."""

    # -- sizes and classes ------------------------------------------------------

    def class_of(self, size: int) -> int:
        """Index of the smallest class whose chunk holds `size` bytes (-1: too large)."""
        for index, klass in enumerate(self.classes):
            if size <= klass.chunk:
                return index
        return -1

    # -- the cache ------------------------------------------------------------

    def get(self, key: object, now: float) -> object | None:
        """The value, bumping the item's LRU flags (None: absent or expired)."""
        item = self.items.get(key)
        if item is None:
            return None
        tick = math.floor(now)
        if item.exptime <= tick:
            self._unlink(item)
            self.reclaimed += 1
            return None
        if not item.active:
            if not item.fetched:
                item.fetched = True
            else:
                item.active = True
                item.time = tick
                if item.lru == COLD:  # do_item_update: hits to COLD move to WARM
                    item.active = False
                    self._move(item, WARM)
        return item.value

    def contains(self, key: object, now: float) -> bool:
        item = self.items.get(key)
        return item is not None and item.exptime > math.floor(now)

    def set(self, key: object, value: object, size: int, expires: float, now: float) -> bool:
        """Store an item of `size` bytes (`item_size`) until tick `expires`; False if
        memcached would answer out of memory (or the item is larger than a chunk)."""
        cls = self.class_of(size)
        if cls < 0 or not self._alloc_pull(cls, now):
            self.out_of_memory += 1
            return False
        old = self.items.get(key)
        if old is not None:
            self._unlink(old)
        item = Item(key, value, size, cls, math.floor(now), expires)
        self.items[key] = item
        self.lrus[cls][HOT][key] = item
        self.lru_bytes[cls][HOT] += size
        self.bytes += size
        self.juggle(cls, now)
        return True

    def delete(self, key: object) -> bool:
        item = self.items.get(key)
        if item is None:
            return False
        self._unlink(item)
        return True

    def __len__(self) -> int:
        return len(self.items)

    # -- memory ---------------------------------------------------------------

    def _alloc(self, cls: int) -> bool:
        """A free chunk of class `cls`, taking a new page if the limit allows."""
        klass = self.classes[cls]
        if klass.free == 0:
            if self.malloced + self.page > self.limit and klass.pages > 0:
                return False
            klass.pages += 1
            klass.free += klass.per_page
            self.malloced += self.page
        klass.free -= 1
        return True

    def _alloc_pull(self, cls: int, now: float) -> bool:
        for _ in range(ALLOC_TRIES):
            if self._alloc(cls):
                return True
            if self._pull_tail(cls, COLD, 0, evict=True, max_age=0, now=now) <= 0:
                self._pull_tail(cls, HOT, 0, evict=False, max_age=0, now=now)
        return False

    def _unlink(self, item: Item) -> None:
        del self.items[item.key]
        del self.lrus[item.cls][item.lru][item.key]
        self.lru_bytes[item.cls][item.lru] -= item.size
        self.bytes -= item.size
        self.classes[item.cls].free += 1

    def _move(self, item: Item, lru: int) -> None:
        """To the head of another LRU of its class."""
        lrus, sizes = self.lrus[item.cls], self.lru_bytes[item.cls]
        del lrus[item.lru][item.key]
        sizes[item.lru] -= item.size
        item.lru = lru
        lrus[lru][item.key] = item
        sizes[lru] += item.size

    # -- the LRU maintainer -----------------------------------------------------

    def juggle(self, cls: int, now: float) -> None:
        """`lru_maintainer_juggle`: settle HOT and WARM into their limits."""
        cold = self.lrus[cls][COLD]
        tick = math.floor(now)
        cold_age = tick - next(iter(cold.values())).time if cold else 0
        hot_age, warm_age = int(cold_age * HOT_MAX_FACTOR), int(cold_age * WARM_MAX_FACTOR)
        total = sum(self.lru_bytes[cls])
        for _ in range(JUGGLES):
            more = 0
            if self._pull_tail(cls, HOT, total, evict=False, max_age=hot_age, now=now) or (
                self._pull_tail(cls, WARM, total, evict=False, max_age=warm_age, now=now)
            ):
                more += 1
            more += self._pull_tail(cls, COLD, total, evict=False, max_age=0, now=now)
            if not more:
                break

    def _pull_tail(
        self, cls: int, lru: int, total: int, *, evict: bool, max_age: int, now: float
    ) -> int:
        """`lru_pull_tail`: look at up to 5 items from the tail of one LRU."""
        queue = self.lrus[cls][lru]
        tick = math.floor(now)
        removed = 0
        for item in list(_tail(queue, TAIL_TRIES)):
            if item.key not in queue:
                continue
            if item.exptime <= tick:  # expired: reclaimed, keep looking
                self._unlink(item)
                self.reclaimed += 1
                removed += 1
                continue
            if lru == COLD:
                if evict:
                    self._unlink(item)
                    self.evictions += 1
                    removed += 1
                    if self.on_evict is not None:
                        self.on_evict(item.value)
                elif item.active:
                    item.active = False
                    self._move(item, WARM)
                    removed += 1
                return removed
            limit = total * HOT_LRU_PCT // 100 if lru == HOT else 0
            if limit == 0:
                limit = total * WARM_LRU_PCT // 100
            if item.active:
                item.active = False
                removed += 1
                if lru == WARM:
                    queue.move_to_end(item.key)  # to WARM's head; look at the next one
                    continue
                self._move(item, WARM)
                return removed
            if self.lru_bytes[cls][lru] > limit or tick - item.time > max_age:
                self._move(item, COLD)
                return removed + 1
            return removed
        return removed


def _tail(queue: OrderedDict[object, Item], n: int) -> list[Item]:
    """The `n` items at the tail (least recent first)."""
    out = []
    for item in queue.values():
        out.append(item)
        if len(out) == n:
            break
    return out
