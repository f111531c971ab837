"""The slab model (lab/slabs.py): memcached's chunk sizes, item sizes, pages, SLRU."""

from __future__ import annotations

import math

import numpy as np

from lab.memcached.replay import replay_model, stream
from lab.slabs import COLD, HOT, WARM, SlabCache, chunk_sizes, item_size

INF = math.inf


def test_chunk_sizes_are_memcacheds() -> None:
    """`memcached -vv -f 1.25 -n 48` and `-f 2 -n 20` (1.6.18) print these classes."""
    default = chunk_sizes(1.25, 48)
    assert default[:8] == [96, 120, 152, 192, 240, 304, 384, 480]
    assert default[-3:] == [315872, 394840, 524288] and len(default) == 39
    assert chunk_sizes(2.0, 20) == [
        72, 144, 288, 576, 1152, 2304, 4608, 9216, 18432, 36864, 73728, 147456, 524288,
    ]  # fmt: skip


def test_an_item_is_header_key_value_and_cas() -> None:
    assert item_size(7, 1000) == 48 + 8 + 1002 + 8
    assert item_size(7, 1000, flags=True, cas=False) == 48 + 8 + 4 + 1002


def test_a_class_always_gets_its_first_page_then_memory_calcifies() -> None:
    cache = SlabCache(2 << 20)
    small = item_size(8, 100)
    for key in range(20000):  # small items take both pages of the budget
        cache.set(key, True, small, INF, 0.0)
    assert cache.malloced == 2 << 20 and cache.evictions > 0
    big = item_size(8, 100_000)
    for key in range(100, 110):  # a new class still gets one page, beyond -m
        assert cache.set(("big", key), True, big, INF, 0.0)
    assert cache.malloced == 3 << 20
    pages = [c.pages for c in cache.classes if c.pages]
    assert sorted(pages) == [1, 2]  # no page moved: slab_automove off


def test_new_items_go_hot_and_a_second_hit_saves_them_from_cold() -> None:
    cache = SlabCache(1 << 20)
    size = item_size(8, 1000)
    cache.set("a", True, size, INF, 0.0)
    for key in range(200):  # push "a" out of HOT into COLD
        cache.set(key, True, size, INF, 0.0)
    assert cache.items[199].lru == HOT  # HOT keeps the newest 20% of the bytes
    assert cache.lru_bytes[cache.items[199].cls][HOT] <= 0.2 * 201 * size
    assert cache.items["a"].lru == COLD
    assert cache.get("a", 0.0) and cache.items["a"].fetched
    assert cache.get("a", 0.0) and cache.items["a"].lru == WARM  # ACTIVE in COLD: to WARM
    for key in range(200, 2000):  # fill and evict: "a" survives in WARM
        cache.set(key, True, size, INF, 0.0)
    assert "a" in cache.items and cache.evictions > 0


def test_expiry_is_on_whole_second_ticks() -> None:
    cache = SlabCache(1 << 20)
    cache.set("k", True, 100, 11, 10.4)  # expires at tick 11
    assert cache.get("k", 10.99) is True
    assert cache.get("k", 11.0) is None


def test_the_model_is_deterministic() -> None:
    ids, sizes = stream(2000, 20000, 3, sizes=(100, 1000, 4000))
    times = np.linspace(0, 5, len(ids))
    runs = [replay_model(ids, sizes, times, 0.5, memory=2 << 20) for _ in range(2)]
    assert runs[0].hit_ratio == runs[1].hit_ratio and runs[0].items == runs[1].items
