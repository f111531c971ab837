"""lab.sharding: ketama against uhashring, Redis hash slots against redis-py and redis-cli."""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import tracemalloc
from collections import Counter

import numpy as np
import pytest
import redis.crc
from uhashring import HashRing

from lab.sharding import (
    SLOTS,
    UNKNOWN,
    KetamaRing,
    OwnerTable,
    Sharding,
    hash_tag,
    key_name,
    key_slot,
    lazy_owner_table,
    node_name,
    router,
    slot_ranges,
)


def _names(n: int) -> list[str]:
    rng = random.Random(42)
    ints = [key_name(k) for k in range(n // 2)]
    strings = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789:{}_-") for _ in range(12))
        for _ in range(n - n // 2)
    ]
    return ints + strings


def test_key_and_node_names() -> None:
    assert key_name(5) == "key:5"
    assert key_name("user:1") == "user:1"
    assert node_name(0) == "node-0"


# --- ketama ----------------------------------------------------------------------------------


@pytest.mark.parametrize("nodes", [2, 3, 5, 8])
def test_ketama_matches_uhashring(nodes: int) -> None:
    # uhashring's ketama mode: 40 vnodes x 4 md5 words per node, hashing "<node>-<i>",
    # little-endian 32-bit points, key hash = first md5 word: libketama's continuum.
    names = [node_name(i) for i in range(nodes)]
    ours = KetamaRing(names)
    theirs = HashRing(nodes=names, hash_fn="ketama")
    assert theirs.size == 160 * nodes
    for name in _names(4000):
        assert names[ours.owner(name)] == theirs.get_node(name), name


def test_ketama_router_is_the_ring_over_hash_tags() -> None:
    ring = KetamaRing([node_name(i) for i in range(4)])
    route = router("ketama", 4)
    for name in _names(1000):
        assert route(name) == ring.owner(hash_tag(name))


@pytest.mark.parametrize("kind", ["ketama", "slots", "modulo"])
def test_a_hash_tag_puts_a_companion_key_on_its_keys_node(kind: Sharding) -> None:
    route = router(kind, 5)
    for k in range(300):
        assert route(f"lease:{{{key_name(k)}}}") == route(key_name(k))
    assert hash_tag("a{b}c") == "b" and hash_tag("a{}c") == "a{}c" and hash_tag("abc") == "abc"


def test_ketama_balance() -> None:
    nodes, keys = 4, 20_000
    route = router("ketama", nodes)
    counts = Counter(route(key_name(k)) for k in range(keys))
    assert set(counts) == set(range(nodes))
    for n in range(nodes):
        assert 0.6 * keys / nodes < counts[n] < 1.4 * keys / nodes, counts


@pytest.mark.parametrize("nodes", [3, 5])
def test_ketama_adding_a_node_moves_about_one_nth_only_to_it(nodes: int) -> None:
    keys = 20_000
    before = KetamaRing([node_name(i) for i in range(nodes)])
    after = KetamaRing([node_name(i) for i in range(nodes + 1)])
    moved = 0
    for k in range(keys):
        name = key_name(k)
        old, new = before.owner(name), after.owner(name)
        if old != new:
            moved += 1
            assert new == nodes, "a key may only move to the new node"
    share = 1 / (nodes + 1)
    assert 0.5 * share < moved / keys < 1.5 * share


def test_ketama_wraps_around_the_ring() -> None:
    names = ["a", "b", "c"]
    theirs = HashRing(nodes=names, hash_fn="ketama")
    points = theirs.get_points()
    last_point, first_owner = points[-1][0], points[0][1]
    # keys hashing above the last point belong to the owner of the first point
    above = [
        name
        for name in (f"probe-{i}" for i in range(20_000))
        if int.from_bytes(hashlib.md5(name.encode()).digest()[:4], "little") > last_point
    ]
    assert above
    ring = KetamaRing(names)
    for name in above:
        assert names[ring.owner(name)] == first_owner == theirs.get_node(name)


# --- hash slots ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "slot"),
    [("foo", 12182), ("123456789", 0x31C3), ("", 0)],  # 0x31C3: CRC16-XMODEM check value
)
def test_known_slots(name: str, slot: int) -> None:
    assert key_slot(name) == slot


def test_hash_tags() -> None:
    assert key_slot("{user1000}.following") == key_slot("{user1000}.followers")
    assert key_slot("{user1000}.following") == key_slot("user1000")
    assert key_slot("foo{bar}{zap}") == key_slot("bar")  # first {...} only
    assert key_slot("foo{{bar}}zap") == key_slot("{bar")
    assert key_slot("foo{}{bar}") != key_slot("bar")  # empty tag: whole key is hashed
    assert key_slot("foo{}{bar}") == redis.crc.key_slot(b"foo{}{bar}")
    assert key_slot("foo{bar") == redis.crc.key_slot(b"foo{bar")


def test_key_slot_matches_redis_py() -> None:
    for name in [*_names(3000), "ключ", "{ключ}x", "a{b}c{d}"]:
        assert key_slot(name) == redis.crc.key_slot(name.encode()), name


def _redis_cli_split(nodes: int) -> list[tuple[int, int]]:
    """clusterManagerCommandCreate in redis-cli.c: float32 arithmetic, lround, and a
    cursor that accumulates slots_per_node (not last + 1)."""
    per = np.float32(SLOTS) / np.float32(nodes)
    cursor = np.float32(0.0)
    first = 0
    out = []
    for i in range(nodes):
        last = math.floor(float(np.float32(cursor + per - np.float32(1))) + 0.5)  # lround
        if last > SLOTS or i == nodes - 1:
            last = SLOTS - 1
        last = max(last, first)
        out.append((first, last))
        first = last + 1
        cursor = np.float32(cursor + per)
    return out


def test_reference_split_is_redis_cli() -> None:
    # the ranges `redis-cli --cluster create` prints for 3 and 6 primaries
    assert _redis_cli_split(3) == [(0, 5460), (5461, 10922), (10923, 16383)]
    assert _redis_cli_split(6) == [
        (0, 2730),
        (2731, 5460),
        (5461, 8191),
        (8192, 10922),
        (10923, 13652),
        (13653, 16383),
    ]


@pytest.mark.parametrize("nodes", list(range(1, 65)))
def test_slot_ranges_cover_every_slot_once(nodes: int) -> None:
    ranges = slot_ranges(nodes)
    assert len(ranges) == nodes
    assert ranges[0][0] == 0
    assert ranges[-1][1] == SLOTS - 1
    for (_, last), (first, _) in itertools.pairwise(ranges):
        assert first == last + 1
    assert all(first <= last for first, last in ranges)


def _spread(ranges: list[tuple[int, int]]) -> int:
    sizes = [last - first + 1 for first, last in ranges]
    return max(sizes) - min(sizes)


def test_redis_cli_split_is_even() -> None:
    assert all(_spread(_redis_cli_split(n)) <= 1 for n in range(1, 65))


@pytest.mark.parametrize("nodes", [1, 2, 3, 4, 5, 8, 16])
def test_slot_ranges_even_for_few_nodes(nodes: int) -> None:
    assert _spread(slot_ranges(nodes)) <= 1


@pytest.mark.parametrize("nodes", [1, 2, 4, 8, 16])
def test_slot_ranges_match_redis_cli_for_powers_of_two(nodes: int) -> None:
    assert slot_ranges(nodes) == _redis_cli_split(nodes)


def test_slot_ranges_three_nodes_is_redis_cli_split() -> None:
    assert slot_ranges(3) == [(0, 5460), (5461, 10922), (10923, 16383)]


def test_slot_ranges_match_redis_cli_up_to_64_nodes() -> None:
    wrong = [n for n in range(1, 65) if slot_ranges(n) != _redis_cli_split(n)]
    assert wrong == []


def test_slot_ranges_even_up_to_64_nodes() -> None:
    uneven = [n for n in range(1, 65) if _spread(slot_ranges(n)) > 1]
    assert uneven == []


def test_slots_router_follows_the_ranges() -> None:
    nodes = 3
    route = router("slots", nodes)
    ranges = slot_ranges(nodes)
    seen = set()
    for name in _names(3000):
        owner = route(name)
        first, last = ranges[owner]
        assert first <= key_slot(name) <= last
        seen.add(owner)
    assert seen == {0, 1, 2}
    assert route("{user1000}.following") == route("{user1000}.followers")


# --- modulo and tables -----------------------------------------------------------------------


def test_modulo_spreads_keys() -> None:
    nodes, keys = 4, 20_000
    route = router("modulo", nodes)
    counts = Counter(route(key_name(k)) for k in range(keys))
    assert set(counts) == set(range(nodes))
    for n in range(nodes):
        assert abs(counts[n] - keys / nodes) < 0.05 * keys / nodes, counts
    # deterministic, not dependent on Python's per-process hash seed
    assert [route(key_name(k)) for k in range(100)] == [
        router("modulo", nodes)(key_name(k)) for k in range(100)
    ]


@pytest.mark.parametrize("kind", ["ketama", "slots", "modulo"])
def test_single_node_owns_everything(kind: str) -> None:
    route = router(kind, 1)  # type: ignore[arg-type]
    assert {route(name) for name in _names(200)} == {0}
    assert list(lazy_owner_table(kind, 1, 50)) == [0] * 50  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["ketama", "slots", "modulo"])
def test_owner_table_is_the_router_on_int_keys(kind: str) -> None:
    route = router(kind, 3)  # type: ignore[arg-type]
    table = list(lazy_owner_table(kind, 3, 2000))  # type: ignore[arg-type]
    assert table == [route(key_name(k)) for k in range(2000)]
    assert set(table) == {0, 1, 2}


@pytest.mark.parametrize("kind", ["ketama", "slots", "modulo"])
def test_owner_table_of_a_huge_keyspace_is_lazy(kind: str) -> None:
    tracemalloc.start()
    table = OwnerTable(kind, 5, 10**12)  # type: ignore[arg-type]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2**20  # nothing per key
    route = router(kind, 5)  # type: ignore[arg-type]
    for key in (0, 1, 10**6, 10**12 - 1):
        assert table[key] == route(key_name(key))
    assert len(table) == 10**12
    with pytest.raises(IndexError):
        table[10**12]
    with pytest.raises(IndexError):
        table[-1]
    with pytest.raises(TypeError):
        table["key:1"]  # type: ignore[call-overload]


def test_owner_table_computes_an_owner_once_and_only_when_asked() -> None:
    table = OwnerTable("ketama", 3, 1000)
    assert set(table.memo) == {UNKNOWN}
    owner = table[17]
    assert table.memo[17] == owner and table.memo.count(UNKNOWN) == 999
    assert table[10:13] == [table[10], table[11], table[12]]
