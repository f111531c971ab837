"""Trace keys -> lab key ids: dense in order of first appearance, or the ids themselves."""

from __future__ import annotations

import numpy as np
import pytest

from lab.tracefile.chunk import Chunk
from lab.tracefile.keymap import DenseKeys, IdentityKeys
from lab.tracefile.spec import TraceError


def chunk(keys: np.ndarray, start_line: int = 1) -> Chunk:
    n = keys.size
    zeros = np.zeros(n, dtype=np.int64)
    origin = np.arange(start_line, start_line + n, dtype=np.int64)
    return Chunk(0, zeros.astype(float), keys, zeros, zeros.astype(bool), origin, "line")


def first_appearance(keys: list[object]) -> list[int]:
    ids: dict[object, int] = {}
    return [ids.setdefault(k, len(ids)) for k in keys]


@pytest.mark.parametrize("block", [1, 13, 4096, 100_000])
def test_dense_ids_follow_first_appearance_across_chunks_and_table_growth(block: int) -> None:
    rng = np.random.default_rng(block)
    universe = rng.integers(0, 2**64 - 1, 30_000, dtype=np.uint64)
    universe[:3] = [0, 1, 2**64 - 1]  # extremes of the id range
    keys = universe[rng.zipf(1.3, 60_000) % universe.size]
    dense = DenseKeys()
    got = np.concatenate(
        [dense.map(chunk(keys[i : i + block])) for i in range(0, keys.size, block)]
    )
    assert got.tolist() == first_appearance(keys.tolist())
    assert dense.count == len(set(keys.tolist()))
    assert dense.table_bytes <= 64 * dense.count + 2 * 16 * 4096  # at most half full, 2x growth


def test_text_keys_map_like_their_first_appearance() -> None:
    keys = np.array(["user:1", "user:2", "user:1", "", "ü", "user:10"], dtype=object)
    assert DenseKeys().map(chunk(keys)).tolist() == [0, 1, 0, 2, 3, 4]


def test_a_distinct_key_limit_names_the_line() -> None:
    dense = DenseKeys("t.txt", max_keys=3)
    dense.map(chunk(np.array([1, 2, 1], dtype=np.uint64)))
    with pytest.raises(TraceError, match=r"t\.txt: line 13: more than 3 distinct keys"):
        dense.map(chunk(np.array([3, 3, 4], dtype=np.uint64), start_line=11))


def test_identity_keys_pass_through_and_are_checked_against_the_keyspace() -> None:
    ids = IdentityKeys(100, "t.csv")
    assert ids.map(chunk(np.array(["5", "99", "0"], dtype=object))).tolist() == [5, 99, 0]
    assert ids.map(chunk(np.array([7, 8], dtype=np.uint64))).tolist() == [7, 8]
    with pytest.raises(
        TraceError, match=r"t\.csv: line 2: key 100 is outside the keyspace 0\.\.99"
    ):
        ids.map(chunk(np.array([1, 100], dtype=np.uint64)))
    with pytest.raises(TraceError, match=r"line 3: key 'user:1' is not an integer id"):
        ids.map(chunk(np.array(["1", "2", "user:1"], dtype=object)))
