"""The base of every settings model: a part's options as they appear in a scenario.

A part declares its settings next to its code (`@read_path("refresh-ahead",
settings=RefreshSpec, field="refresh")`); the scenario's strategy model is
assembled from those declarations. Unknown fields are errors, so a typo in a
scenario is never silently ignored, and settings are frozen: a run cannot
change them underneath the parts that read them.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict


class Settings(BaseModel):
    """Frozen, with unknown fields refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def describe(model: type[BaseModel]) -> str:
    """Fields with their defaults, as a YAML flow mapping for `cachelab list`:
    `{expiry: 1.0, release: unconditional|token}` (choices shown as a|b)."""
    shown = []
    for name, info in model.model_fields.items():
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        shown.append(f"{name}: {_value(info.annotation, default)}")
    return "{" + ", ".join(shown) + "}"


def _value(annotation: Any, default: Any) -> str:
    choices = _choices(annotation)
    if choices:
        rest = [c for c in choices if c != default]
        return "|".join([str(default), *rest] if default in choices else choices)
    if isinstance(default, BaseModel):
        return describe(type(default))
    if default is None and (block := _model(annotation)) is not None:
        return f"null|{describe(block)}"  # an optional block: off unless given
    if isinstance(default, bool):
        return str(default).lower()
    return "null" if default is None else str(default)


def _choices(annotation: Any) -> list[str]:
    """The values of a Literal annotation (also inside `Literal[...] | None`), else []."""
    if typing.get_origin(annotation) is typing.Literal:
        return [str(a) for a in typing.get_args(annotation)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [c for arg in typing.get_args(annotation) for c in _choices(arg)]
    return []


def _model(annotation: Any) -> type[BaseModel] | None:
    """The settings model in an annotation such as `Breaker | None`, if there is one."""
    for arg in (annotation, *typing.get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None
