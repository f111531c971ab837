"""libCacheSim's `oracleGeneral` binary traces, read and written.

A trace is a sequence of little-endian 24-byte records with no header:

    uint32 timestamp (seconds)  uint64 object id  uint32 object size  int64 next access

`next access` is the 1-based record number of the object's next request, -1 if
there is none (libCacheSim's traceConv writes it so; its reader also takes
INT64_MAX as none). As libCacheSim's reader does by default
(`ignore_size_zero_req`), records of size 0 are skipped (`zero_size: keep`
keeps them). A plain file is read through a numpy memmap, a `.zst` one by
chunked reads of the decompressed stream: either way one chunk of records at a
time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from lab.tracefile.chunk import Chunk
from lab.tracefile.keymap import DenseKeys
from lab.tracefile.source import is_zstd, looks_like_text, open_binary, read_fully, sniff
from lab.tracefile.spec import TraceError

RECORD = np.dtype([("time", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")])
NO_NEXT = -1
_INT64_MAX = np.iinfo(np.int64).max


class OracleGeneralReader:
    """Chunks of an oracleGeneral trace (plain or zstd-compressed)."""

    has_time = True
    has_size = True
    has_ops = False

    def __init__(self, path: Path, chunk: int, skip_zero_size: bool) -> None:
        self.path = path
        self.chunk = chunk
        self.skip_zero_size = skip_zero_size
        head = sniff(path)
        if not head:
            raise TraceError(f"{path}: the trace is empty; give a file with records in it")
        if looks_like_text(head):
            raise TraceError(
                f"{path}: looks like text, not 24-byte oracleGeneral records; "
                "pass format csv or txt"
            )
        self.records: int | None = None
        if not is_zstd(path):
            size = os.path.getsize(path)
            self.records = size // RECORD.itemsize
            self._check_whole(size)

    def _check_whole(self, size: int) -> None:
        extra = size % RECORD.itemsize
        if extra:
            whole = size // RECORD.itemsize
            raise TraceError(
                f"{self.path}: record {whole + 1}: truncated (the file ends {extra} bytes into "
                f"a {RECORD.itemsize}-byte record); the file was cut short: copy it again, or "
                f"keep only the first {whole} records"
            )

    def _blocks(self) -> Iterator[np.ndarray]:
        """Structured record arrays of at most `chunk` records."""
        if self.records is not None:
            if self.records == 0:
                return
            records = np.memmap(self.path, dtype=RECORD, mode="r")
            for at in range(0, self.records, self.chunk):
                yield np.array(records[at : at + self.chunk])
            del records
            return
        want = self.chunk * RECORD.itemsize
        seen = 0
        with open_binary(self.path) as stream:
            while True:
                data = read_fully(stream, want, self.path)
                seen += len(data)
                if len(data) % RECORD.itemsize:
                    self._check_whole(seen)
                if data:
                    yield np.frombuffer(data, dtype=RECORD)
                if len(data) < want:
                    return

    def chunks(self) -> Iterator[Chunk]:
        start = 0
        first_record = 1
        for block in self._blocks():
            origin = np.arange(first_record, first_record + block.size, dtype=np.int64)
            first_record += block.size
            if self.skip_zero_size:
                keep = block["size"] != 0
                if not keep.all():
                    block, origin = block[keep], origin[keep]
            if not block.size:
                continue
            following = block["next"].astype(np.int64)
            following[following == _INT64_MAX] = NO_NEXT
            yield Chunk(
                start=start,
                time=block["time"].astype(np.float64),
                key=block["id"].copy(),
                size=block["size"].astype(np.int64),
                write=np.zeros(block.size, dtype=bool),
                origin=origin,
                unit="record",
                next_access=following,
            )
            start += block.size


def write_oracle_general(
    path: Path, chunks: Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]
) -> int:
    """Write (time seconds, uint64 id, size) chunks as an oracleGeneral file at `path`
    (not atomically: the caller writes to a temporary name). Times are rounded down to
    whole seconds, the format's resolution. Next-access fields are filled in by a
    second, backward pass over the file; returns the number of records."""
    n = 0
    with path.open("wb") as out:
        for time, ids, size in chunks:
            block = np.empty(ids.size, dtype=RECORD)
            block["time"] = np.floor(time).astype(np.uint32)
            block["id"] = ids
            block["size"] = size
            block["next"] = NO_NEXT
            out.write(block.tobytes())
            n += ids.size
    if n:
        _fill_next_access(path, n)
    return n


def _fill_next_access(path: Path, n: int, chunk: int = 1 << 16) -> None:
    """From the last record backwards: each record's next access is the next record of
    the same id within its chunk, else the first one in the chunks after it."""
    records = np.memmap(path, dtype=RECORD, mode="r+")
    ids = DenseKeys(path)
    first_after = np.empty(0, dtype=np.int64)  # dense id -> 1-based record of its next use
    for end in range(n, 0, -chunk):
        start = max(0, end - chunk)
        block = records[start:end]
        raw = np.asarray(block["id"])
        dense = ids.map(_bare(raw))
        if ids.count > first_after.size:
            grown = np.full(max(ids.count, 2 * first_after.size), NO_NEXT, dtype=np.int64)
            grown[: first_after.size] = first_after
            first_after = grown
        position = np.arange(start + 1, end + 1, dtype=np.int64)
        order = np.lexsort((position, dense))
        following = np.empty(raw.size, dtype=np.int64)
        same = dense[order][1:] == dense[order][:-1]
        following[order[:-1]] = np.where(same, position[order][1:], NO_NEXT)
        following[order[-1]] = NO_NEXT
        last_in_block = np.ones(raw.size, dtype=bool)
        last_in_block[order[:-1]] = ~same
        following[last_in_block] = first_after[dense[last_in_block]]
        block["next"] = following
        first_in_block = np.ones(raw.size, dtype=bool)
        first_in_block[order[1:]] = ~same
        first_after[dense[first_in_block]] = position[first_in_block]
    records.flush()
    del records


def _bare(keys: np.ndarray) -> Chunk:
    n = keys.size
    empty = np.zeros(n, dtype=np.int64)
    return Chunk(0, empty, keys, empty, empty.astype(bool), empty, "record")
