"""What to read from a trace file: its format, the csv column mapping, how keys are mapped.

One frozen model for the command line and, extended by `TraceReplay`
(`lab.tracefile.replay_spec`), for a scenario's `workload.trace`, so both accept
the same fields and reject the same mistakes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

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
