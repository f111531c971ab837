"""Human units in scenarios: durations (`300ms`), sizes (`1KiB`), rates (`5000/s`).

Every parser takes a number (already in base units: seconds, bytes, per second)
or a string with a unit, and raises ValueError with a message that says what
was expected, so scenario errors can name the field and the fix. The annotated
types at the end (`Duration`, `Size`, ...) put a parser on a settings field.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator, Field

_NUMBER = r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
}
_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tb": 1000**4,
    "tib": 1024**4,
}
_RATE_UNITS = {"s": 1.0, "sec": 1.0, "ms": 1000.0, "min": 1 / 60.0, "m": 1 / 60.0, "h": 1 / 3600.0}

_DURATION_RE = re.compile(rf"^\s*{_NUMBER}\s*([a-zµ]+)\s*$")
_SIZE_RE = re.compile(rf"^\s*{_NUMBER}\s*([a-zA-Z]+)\s*$")
_RATE_RE = re.compile(rf"^\s*{_NUMBER}\s*/\s*([a-z]+)\s*$")


def _number(value: object) -> float | None:
    """The value if it is a plain number (bools are not numbers here), else None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(f"must be a finite number, got {value!r}")
        return float(value)
    return None


def parse_duration(value: object) -> float:
    """Seconds from `1.5`, `300ms`, `250us`, `5s`, `5m`, `1h`."""
    if (number := _number(value)) is not None:
        return number
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if m and m.group(2) in _DURATION_UNITS:
            return float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    raise ValueError(
        f"expected a duration such as 300ms, 5s, 5m or a number of seconds, got {value!r}"
    )


def parse_size(value: object) -> int:
    """Bytes from `1024`, `1KiB`, `64MiB`, `1KB` (decimal)."""
    if (number := _number(value)) is not None:
        return int(number)
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        if m and m.group(2).lower() in _SIZE_UNITS:
            return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
    raise ValueError(f"expected a size such as 512B, 1KiB or 64MiB, got {value!r}")


def parse_rate(value: object) -> float:
    """Events per second from `5000/s`, `300/min`, or a number per second."""
    if (number := _number(value)) is not None:
        return number
    if isinstance(value, str):
        m = _RATE_RE.match(value)
        if m and m.group(2) in _RATE_UNITS:
            return float(m.group(1)) * _RATE_UNITS[m.group(2)]
    raise ValueError(f"expected a rate such as 5000/s or 300/min, got {value!r}")


def parse_key_count(value: object) -> int:
    """A number of keys: `10000`, `10000 keys`, `10k keys`, `10k`, `1.5M keys`."""
    if (number := _number(value)) is not None and number == int(number):
        return int(number)
    if isinstance(value, str):
        m = re.match(rf"^\s*{_NUMBER}\s*([kKmM]?)\s*(?:keys?)?\s*$", value, re.IGNORECASE)
        if m:
            mult = {"": 1, "k": 1000, "m": 1_000_000}[m.group(2).lower()]
            count = float(m.group(1)) * mult
            if math.isfinite(count) and count == int(count):
                return int(count)
            raise ValueError(f"expected a whole number of keys, got {value!r}")
        size = _SIZE_RE.match(value)
        if size and size.group(2).lower() in _SIZE_UNITS:
            raise ValueError(
                f"expected a key count such as 10000 or '10000 keys', got the size {value!r} "
                "(a size in bytes is for topology.capacity only)"
            )
    raise ValueError(f"expected a key count such as 10000 or '10000 keys', got {value!r}")


def is_size_text(value: object) -> bool:
    """Whether `value` is a size with a unit (`64MiB`, `512B`) rather than a key count."""
    if not isinstance(value, str):
        return False
    m = _SIZE_RE.match(value)
    return m is not None and m.group(2).lower() in _SIZE_UNITS


def format_duration(seconds: float) -> str:
    """Short human form for tables: 1.2ms, 350us, 2.5s."""
    if seconds != seconds:  # NaN
        return "-"
    a = abs(seconds)
    if a == 0:
        return "0"
    if a < 1e-3:
        return f"{seconds * 1e6:.0f}us"
    if a < 1:
        return f"{seconds * 1e3:.3g}ms"
    return f"{seconds:.3g}s"


Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
"""Seconds, given as `300ms`, `5s` or a number; zero allowed."""
PositiveDuration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
"""Seconds, more than zero."""
Size = Annotated[int, BeforeValidator(parse_size), Field(gt=0)]
"""Bytes, given as `1KiB`, `64MiB` or a number."""
Rate = Annotated[float, BeforeValidator(parse_rate), Field(gt=0)]
"""Events per second, given as `5000/s`, `300/min` or a number."""
KeyCount = Annotated[int, BeforeValidator(parse_key_count), Field(gt=0)]
"""A number of keys, given as `10000`, `10k keys` or `1.5M keys`."""
Fraction = Annotated[float, Field(ge=0, le=1)]
"""A share between 0 and 1."""
