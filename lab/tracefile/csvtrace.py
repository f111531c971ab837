"""csv traces: a header (or none) and a mapping of columns to time, key, op and size.

Read with pandas' C parser in chunks of rows, every mapped column as text, then
converted here so that a bad value is reported with its line: times with
Python's correctly rounded float parsing (so `cachelab trace synth` output
comes back bit for bit), sizes as integers, operations through the op table
of `lab.tracefile.spec` (an unknown operation is an error naming the line).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

import numpy as np
import pandas as pd

from lab.tracefile.chunk import NO_SIZE, Chunk
from lab.tracefile.source import check_text
from lab.tracefile.spec import TIME_DIVISORS, Column, TraceError, TraceSpec

FIELDS = ("time", "key", "op", "size")
_TOKENIZE = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


class CsvReader:
    """Chunks of a csv trace (plain or zstd-compressed, which pandas reads itself)."""

    has_ops: bool
    records: int | None = None

    def __init__(self, spec: TraceSpec, chunk: int) -> None:
        self.path = spec.path
        self.spec = spec
        self.chunk = chunk
        self.ops = spec.op_table()
        self.skip_zero_size = spec.skips_zero_size("csv")
        check_text(spec.path, "csv text")
        self.columns = self._resolve(self._header())
        self.has_time = "time" in self.columns
        self.has_size = "size" in self.columns
        self.has_ops = "op" in self.columns

    def _read(self, **options: Any) -> Any:
        try:
            return pd.read_csv(
                self.path,
                sep=self.spec.delimiter,
                header=0 if self.spec.header else None,
                dtype=str,
                na_filter=False,
                keep_default_na=False,
                skip_blank_lines=False,
                **options,
            )
        except pd.errors.ParserError as exc:
            raise self._parser_error(exc) from None
        except (UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise TraceError(f"{self.path}: not a readable csv trace ({exc})") from None

    def _header(self) -> list[str]:
        frame = self._read(nrows=1)
        return [str(c) for c in frame.columns]

    def _resolve(self, header: Sequence[str]) -> dict[str, int]:
        """Field -> 0-based column index, from names (with a header) or 1-based positions."""
        given = self.spec.columns
        out: dict[str, int] = {}
        for field in FIELDS:
            column: Column | None = getattr(given, field)
            if column is None:
                if self.spec.header and field in header:
                    out[field] = header.index(field)
                elif not self.spec.header and field == "key":
                    out[field] = 0
                continue
            out[field] = self._index(field, column, header)
        if "key" not in out:
            raise TraceError(
                f"{self.path}: no column named 'key' in the header "
                f"(columns: {', '.join(header)}); say which column holds the key "
                "(columns: key=NAME)"
            )
        return out

    def _index(self, field: str, column: Column, header: Sequence[str]) -> int:
        if isinstance(column, int):
            if not 1 <= column <= len(header):
                raise TraceError(
                    f"{self.path}: column {column} for {field} does not exist (the first row "
                    f"has {len(header)} columns); give a position from 1 to {len(header)}"
                )
            return column - 1
        if not self.spec.header:
            raise TraceError(
                f"{self.path}: column {column!r} for {field} is a name, but the trace has no "
                "header; give 1-based positions"
            )
        if column not in header:
            raise TraceError(
                f"{self.path}: no column named {column!r} (for {field}) in the header "
                f"(columns: {', '.join(header)}); fix the column mapping"
            )
        return header.index(column)

    def _parser_error(self, exc: Exception) -> TraceError:
        found = _TOKENIZE.search(str(exc))
        if found:
            want, line, saw = found.groups()
            return TraceError(
                f"{self.path}: line {line}: expected {want} fields, saw {saw}; "
                "fix the line (or the delimiter)"
            )
        return TraceError(f"{self.path}: not a readable csv trace ({exc}); check the format")

    def chunks(self) -> Iterator[Chunk]:
        """All columns are parsed (not only the mapped ones), so that a row with too many
        fields, say a key with an unquoted delimiter in it, is an error, not a shift."""
        first_line = 2 if self.spec.header else 1
        start = 0
        reader = self._read(chunksize=self.chunk)
        rows_before = 0
        while True:
            try:
                frame = next(reader)
            except StopIteration:
                return
            except pd.errors.ParserError as exc:
                raise self._parser_error(exc) from None
            origin = np.arange(len(frame), dtype=np.int64) + first_line + rows_before
            rows_before += len(frame)
            values = {f: frame.iloc[:, i].to_numpy(dtype=object) for f, i in self.columns.items()}
            chunk = self._chunk(start, values, origin)
            if len(chunk):
                start += len(chunk)
                yield chunk

    def _chunk(self, start: int, values: dict[str, np.ndarray], origin: np.ndarray) -> Chunk:
        n = origin.size
        key = values["key"]
        empty = np.flatnonzero(key == "")
        if empty.size:
            raise TraceError(
                f"{self.path}: line {origin[empty[0]]}: empty key; every request needs a key"
            )
        time = self._times(values["time"], origin) if "time" in values else np.full(n, np.nan)
        size = (
            self._sizes(values["size"], origin)
            if "size" in values
            else np.full(n, NO_SIZE, dtype=np.int64)
        )
        write = self._writes(values["op"], origin) if "op" in values else np.zeros(n, dtype=bool)
        if self.skip_zero_size and "size" in values:
            keep = size != 0
            if not keep.all():
                time, key, size, write, origin = (a[keep] for a in (time, key, size, write, origin))
        return Chunk(start, time, key, size, write, origin, "line")

    def _times(self, text: np.ndarray, origin: np.ndarray) -> np.ndarray:
        try:
            time = text.astype(np.float64)
        except ValueError:
            time = np.array([_float_or_nan(t) for t in text])
        bad = np.flatnonzero(~np.isfinite(time) | (time < 0))
        if bad.size:
            at = int(bad[0])
            raise TraceError(
                f"{self.path}: line {origin[at]}: time {text[at]!r} is not a number of "
                f"{self.spec.time_unit} >= 0; fix the line or the time column"
            )
        divisor = TIME_DIVISORS[self.spec.time_unit]
        return time if divisor == 1.0 else time / divisor

    def _sizes(self, text: np.ndarray, origin: np.ndarray) -> np.ndarray:
        try:
            size = text.astype(np.int64)
        except (ValueError, OverflowError):
            size = np.array([_int_or_minus(s) for s in text], dtype=np.int64)
        bad = np.flatnonzero(size < 0)
        if bad.size:
            at = int(bad[0])
            raise TraceError(
                f"{self.path}: line {origin[at]}: size {text[at]!r} is not a whole number of "
                "bytes >= 0; fix the line or the size column"
            )
        return size

    def _writes(self, text: np.ndarray, origin: np.ndarray) -> np.ndarray:
        names, inverse = np.unique(text, return_inverse=True)
        lowered = [str(name).strip().lower() for name in names]
        unknown = [i for i, name in enumerate(lowered) if name not in self.ops]
        if unknown:
            at = int(np.flatnonzero(np.isin(inverse, unknown))[0])
            known = ", ".join(sorted(self.ops))
            raise TraceError(
                f"{self.path}: line {origin[at]}: unknown operation {text[at]!r}; map it with "
                f"ops {str(text[at]).strip()}=read (or =write); known: {known}"
            )
        is_write = np.array([self.ops[name] for name in lowered], dtype=bool)
        return np.asarray(is_write[inverse.reshape(-1)])


def _float_or_nan(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def _int_or_minus(text: str) -> int:
    try:
        return int(text)
    except (ValueError, OverflowError):
        return -1


def write_csv_rows(
    out: TextIO,
    time: np.ndarray | None,
    keys: np.ndarray,
    writes: np.ndarray,
    sizes: np.ndarray | None,
) -> None:
    """Append rows `time,key,op,size` (time and size columns only if given). Times are
    written with repr(), the shortest text that parses back to the same float64."""
    columns: list[list[str]] = []
    if time is not None:
        columns.append([repr(t) for t in time.tolist()])
    columns.append([str(k) for k in keys.tolist()])
    columns.append(["set" if w else "get" for w in writes.tolist()])
    if sizes is not None:
        columns.append([str(s) for s in sizes.tolist()])
    out.write("".join(",".join(row) + "\n" for row in zip(*columns, strict=True)))


def csv_header(has_time: bool, has_size: bool) -> str:
    return ",".join(["time"] * has_time + ["key", "op"] + ["size"] * has_size) + "\n"
