"""What to read from a trace file: its format, the csv column mapping, how keys are mapped.

One frozen model for the command line and, extended by `TraceReplay`, for a scenario's
`workload.trace`, so both accept the same fields and reject the same mistakes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

Format = Literal["oracleGeneral", "csv", "txt"]
FORMATS: tuple[Format, ...] = ("oracleGeneral", "csv", "txt")
Column = str | int

READ_OPS = ("get", "gets", "read")
WRITE_OPS = (
    "set",
    "add",
    "replace",
    "cas",
    "append",
    "prepend",
    "delete",
    "incr",
    "decr",
    "write",
    "update",
    "insert",
)
"""libCacheSim's operation names (and YCSB's insert): a delete is a write, since in a
look-aside cache it is the application changing the data (the lab's write path decides
whether the cache is then invalidated or updated)."""

TIME_DIVISORS = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}
"""Trace time units per second (a division, correctly rounded, keeps 1500 ms = 1.5 s)."""


class TraceError(Exception):
    """A trace that cannot be read: one line naming the file, the line or record, and the fix.

    Not a ScenarioError (this module must not import the scenario, which will embed
    TraceSpec); the command line prints it as one line with exit status 2.
    """


class Columns(BaseModel):
    """Which csv column holds what: a header name, or a 1-based position without a header.

    Unset columns default to a column named `time`, `key`, `op`, `size` when the header
    has one; only the key is required. Without a time column requests keep their order
    only; without an op column every request is a read; without a size column sizes
    are unknown.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    time: Column | None = None
    key: Column | None = None
    op: Column | None = None
    size: Column | None = None


class TraceSpec(BaseModel):
    """A trace file and how to read it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path
    format: Format | None = None
    columns: Columns = Columns()
    header: bool = True
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    time_unit: Literal["s", "ms", "us", "ns"] = "s"
    ops: dict[str, Literal["read", "write"]] = {}
    zero_size: Literal["skip", "keep"] | None = None
    keys: Literal["dense", "identity"] = "dense"

    @field_validator("ops")
    @classmethod
    def _lower_case(cls, value: dict[str, str]) -> dict[str, str]:
        return {op.strip().lower(): kind for op, kind in value.items()}

    def op_table(self) -> dict[str, bool]:
        """Operation name (lower case) -> is it a write."""
        table = {op: False for op in READ_OPS} | {op: True for op in WRITE_OPS}
        table.update({op: kind == "write" for op, kind in self.ops.items()})
        return table

    def skips_zero_size(self, fmt: Format) -> bool:
        """libCacheSim skips size-0 records of oracleGeneral traces by default; csv keeps
        them (a delete carries no value)."""
        if self.zero_size is None:
            return fmt == "oracleGeneral"
        return self.zero_size == "skip"


ORDER_ONLY = "order-only"
_SPEED = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?\s*x\s*$", re.IGNORECASE)


def _speed(value: object) -> object:
    """`10x`, `0.5x`, `1x` (a number is read as times) or `order-only`; None = decide
    from the trace (its times at 1x if it has times, else its order only)."""
    if value is None or value == ORDER_ONLY:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = f"{value}x"
    if not isinstance(value, str) or not _SPEED.match(value):
        raise ValueError(
            f"speed: expected a factor such as 10x or 0.5x, or {ORDER_ONLY}, got {value!r}"
        )
    factor = float(value.strip()[:-1])
    if not 0 < factor < float("inf"):
        raise ValueError(f"speed: the factor must be > 0, got {value!r}")
    return f"{factor:g}x"


def _start(value: object) -> object:
    if value == "first" or value is None:
        return "first"
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(
            f"start: 'first' (the first request's time is time 0) or a trace time in "
            f"seconds >= 0, got {value!r}"
        )
    return float(value)


class TraceReplay(TraceSpec):
    """A scenario's `workload.trace`: a trace file replayed as the request stream.

    `speed: 10x` replays the trace's times ten times faster, as open-loop arrivals
    (`(time - start) / 10`); `speed: order-only` keeps the requests' order and takes
    the arrivals from the scenario's `arrivals`. `start` is the trace time that
    becomes time 0 (default: the first request's). The file is checked when the
    scenario is loaded (it exists, its format, csv header and column mapping);
    `resolved` is its path (relative paths are taken from the scenario's folder).
    """

    speed: Annotated[str | None, BeforeValidator(_speed)] = None
    start: Annotated[Literal["first"] | float, BeforeValidator(_start)] = "first"
    _file: Path = PrivateAttr(default=Path())
    _has_time: bool = PrivateAttr(default=False)
    _has_size: bool = PrivateAttr(default=False)

    @model_validator(mode="after")
    def _check_file(self, info: ValidationInfo) -> TraceReplay:
        from lab.tracefile.readers import open_trace

        base = (info.context or {}).get("base") if info.context else None
        self._file = self.path if self.path.is_absolute() else Path(base or ".") / self.path
        if not self._file.exists():
            raise ValueError(
                f"path: {self._file}: no such trace file; check the path (a relative path is "
                "taken from the scenario's folder)"
            )
        try:
            reader = open_trace(self.model_copy(update={"path": self._file}))
        except TraceError as exc:
            raise ValueError(str(exc)) from None
        self._has_time, self._has_size = reader.has_time, reader.has_size
        if self.speed is None:
            object.__setattr__(self, "speed", "1x" if reader.has_time else ORDER_ONLY)
        elif self.speed != ORDER_ONLY and not reader.has_time:
            raise ValueError(
                f"speed: {self._file} records no times, so it cannot be replayed at "
                f"{self.speed}; use speed: {ORDER_ONLY} (or map its time column)"
            )
        return self

    @property
    def resolved(self) -> Path:
        return self._file

    @property
    def factor(self) -> float | None:
        """How many times faster than recorded; None for order-only."""
        if self.speed is None or self.speed == ORDER_ONLY:
            return None
        return float(self.speed[:-1])

    @property
    def timed(self) -> bool:
        """Whether the trace's times drive the arrivals."""
        return self.factor is not None

    @property
    def has_size(self) -> bool:
        return self._has_size
