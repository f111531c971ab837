"""The value codec round-trips every field, whatever the value size, and reads only the
header (`decode` splits the first HEAD_MAX bytes, not a copy of the padding)."""

from __future__ import annotations

import pytest

from lab.codec import HEAD_MAX, decode, encode
from lab.core import Versioned


@pytest.mark.parametrize("size", [1, 8, 20, HEAD_MAX - 1, HEAD_MAX, HEAD_MAX + 1, 1024, 1 << 20])
@pytest.mark.parametrize(
    "value",
    [
        Versioned(0, 0),
        Versioned(123456789012345, 0),
        Versioned(7, 0, expiry=1.0 / 3.0, delta=-2.5e-300),
        Versioned(2**63 - 1, 0, expiry=1e308, delta=5e-324),
    ],
)
def test_round_trip(size: int, value: Versioned) -> None:
    original = Versioned(value.version, size, value.expiry, value.delta)
    raw = encode(original)
    assert len(raw) >= size
    back = decode(raw)
    assert (back.version, back.size, back.expiry, back.delta) == (
        original.version,
        original.size,
        original.expiry,
        original.delta,
    )


def test_counter_and_a_header_longer_than_the_split() -> None:
    assert decode(b"42") == Versioned(42, 8)  # a counter written by INCRBY
    long_head = b"%s:16:0:0:" % (b"0" * HEAD_MAX + b"9")  # leading zeros past HEAD_MAX
    assert decode(long_head + b"x" * 16) == Versioned(9, 16)
