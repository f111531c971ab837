"""One entry point for every trace format: `open_trace(spec)` -> a reader of chunks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from lab.tracefile.chunk import Chunk
from lab.tracefile.csvtrace import CsvReader
from lab.tracefile.oracle import OracleGeneralReader
from lab.tracefile.source import detect_format
from lab.tracefile.spec import Format, TraceSpec
from lab.tracefile.txt import TxtReader

CHUNK = 1 << 16
"""Requests per chunk: 64 Ki requests of fixed-size arrays, about 3 MB."""


class TraceReader(Protocol):
    """What every format's reader offers."""

    has_time: bool
    has_size: bool
    has_ops: bool
    records: int | None
    """The number of records when known before reading (plain oracleGeneral files)."""

    def chunks(self) -> Iterator[Chunk]: ...


def open_trace(spec: TraceSpec, chunk: int = CHUNK) -> TraceReader:
    """A reader for the trace `spec` names; checks the file before anything is read."""
    fmt: Format = detect_format(spec.path, spec.format)
    if fmt == "oracleGeneral":
        return OracleGeneralReader(spec.path, chunk, spec.skips_zero_size(fmt))
    if fmt == "csv":
        return CsvReader(spec, chunk)
    return TxtReader(spec.path, chunk)
