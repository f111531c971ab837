"""A scenario's `workload.trace`: TraceSpec plus how to replay it (speed, start).

Apart from `spec.py` because checking the file when the scenario loads uses the
readers, which themselves read `TraceSpec` (imported when the check runs, so that
loading a scenario does not import pandas).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, PrivateAttr, ValidationInfo, model_validator

from lab.tracefile.spec import TraceError, TraceSpec

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
