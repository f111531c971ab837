"""What `cachelab list` says about strategy parts: every registered part, its one-line
summary and its settings with their defaults, read from the registry."""

from __future__ import annotations

from lab.core.settings import describe
from lab.patterns.base import Axis, Registration, StrategySettings
from lab.patterns.registry import REGISTRATIONS

SECTIONS: list[tuple[str, Axis]] = [
    ("Read paths (read: <name>)", "read"),
    ("Write paths (write: <name>)", "write"),
    ("Stampede guards (stampede: {<name>: {...}}, with read: cache-aside)", "stampede"),
    ("Layers (<name>: {...} puts one in front of the read and write paths)", "layer"),
    ("Client behaviour towards a failing cache", "client"),
]


def catalog() -> str:
    """Every registered part by kind, with its summary and, below it, its settings."""
    lines = [f"Every strategy: {describe(StrategySettings)}", ""]
    for title, axis in SECTIONS:
        lines.append(f"{title}:")
        for reg in sorted((r for r in REGISTRATIONS if r.axis == axis), key=lambda r: r.name):
            lines.append(f"  {reg.name:<14} {reg.part.summary}")
            if (settings := _settings(reg)) is not None:
                lines.append(f"  {'':<14} {settings}")
        lines.append("")
    return "\n".join(lines).rstrip("\n")


def _settings(reg: Registration) -> str | None:
    """The settings as they are written in a strategy, with their defaults."""
    if reg.settings is None or not reg.settings.model_fields:
        return None
    shown = describe(reg.settings)
    if reg.field is None:
        return shown.removeprefix("{").removesuffix("}")  # top-level strategy fields
    return f"{reg.field.rpartition('.')[2]}: {shown}"
