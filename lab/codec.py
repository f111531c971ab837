"""A `Versioned` as bytes on a real server, padded to the scenario's value size.

Values carry their version (and the expiry/delta some parts keep) in a
header padded with ``x`` to `size` bytes, so a server holds as many bytes per
value as the scenario says and every field survives the round trip:
``b"<version>:<size>:<expiry>:<delta>:xxx..."``. Any backend that stores bytes
(Redis, memcached, ...) uses it.
"""

from __future__ import annotations

from lab.core import Versioned

HEAD_MAX = 128
"""Bytes that hold any header `encode` writes (two ints and two float reprs: < 100)."""


def encode(value: Versioned) -> bytes:
    """`b"<version>:<size>:<expiry>:<delta>:xxx..."`, `size` bytes long when the header fits.

    `expiry` and `delta` (read by XFetch and refresh-ahead) are written with
    `repr`, so the floats survive the round trip exactly.
    """
    expiry = getattr(value, "expiry", 0.0)
    delta = getattr(value, "delta", 0.0)
    if expiry or delta:
        head = b"%d:%d:%a:%a:" % (value.version, value.size, expiry, delta)
    else:
        head = b"%d:%d:0:0:" % (value.version, value.size)
    pad = value.size - len(head)
    return head + b"x" * pad if pad > 0 else head


def decode(raw: bytes) -> Versioned:
    """The inverse of `encode`; a counter (from `incr`) reads as `Versioned(n, 8)`,
    as in the simulator."""
    fields = raw[:HEAD_MAX].split(b":", 4)  # the header only, not a copy of the padding
    if len(fields) < 5:
        if b":" not in raw:
            return Versioned(int(raw), 8)
        fields = raw.split(b":", 4)  # a header longer than HEAD_MAX (not `encode`'s)
    version, size, expiry, delta, _ = fields
    if expiry == b"0" and delta == b"0":
        return Versioned(int(version), int(size))
    return Versioned(int(version), int(size), float(expiry), float(delta))
