"""txt traces: one key per line (libCacheSim's plain text format).

Every request is a read with no time and no size: the replay takes arrivals
and value sizes from the scenario. Surrounding white space is stripped and
blank lines are skipped (line numbers in messages still count them).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from lab.tracefile.chunk import NO_SIZE, Chunk
from lab.tracefile.source import check_text, open_binary
from lab.tracefile.spec import TraceError


class TxtReader:
    """Chunks of a one-key-per-line trace (plain or zstd-compressed)."""

    has_time = False
    has_size = False
    has_ops = False
    records: int | None = None

    def __init__(self, path: Path, chunk: int) -> None:
        self.path = path
        self.chunk = chunk
        check_text(path, "one key per line")

    def chunks(self) -> Iterator[Chunk]:
        start = 0
        line = 0
        with open_binary(self.path) as stream:
            while True:
                try:
                    block = list(itertools.islice(stream, self.chunk))
                except Exception as exc:  # a corrupt zstd stream
                    raise TraceError(
                        f"{self.path}: not a valid zstd stream ({exc}); is the file really "
                        "compressed, or cut short?"
                    ) from None
                if not block:
                    return
                keys, origin = self._keys(block, line)
                line += len(block)
                if keys:
                    n = len(keys)
                    yield Chunk(
                        start=start,
                        time=np.full(n, np.nan),
                        key=np.array(keys, dtype=object),
                        size=np.full(n, NO_SIZE, dtype=np.int64),
                        write=np.zeros(n, dtype=bool),
                        origin=np.array(origin, dtype=np.int64),
                        unit="line",
                    )
                    start += n

    def _keys(self, block: list[bytes], before: int) -> tuple[list[str], list[int]]:
        keys: list[str] = []
        origin: list[int] = []
        for i, raw in enumerate(block, start=before + 1):
            key = raw.strip()
            if not key:
                continue
            if b"\x00" in key:
                raise TraceError(
                    f"{self.path}: line {i}: a NUL byte in the key; is this a binary trace? "
                    "pass format oracleGeneral"
                )
            keys.append(key.decode("utf-8", "surrogateescape"))
            origin.append(i)
        return keys, origin
