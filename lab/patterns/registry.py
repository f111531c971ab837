"""The registry of strategy parts, and the scenario's strategy model built from it.

Each part registers itself in its own module, with its settings model beside
it: `@read_path("refresh-ahead", settings=RefreshSpec, field="refresh")`. The
strategy model a scenario is validated with (`strategy_model()`) is the
common settings below plus one field per registered settings block, and the
rules between parts are each part's `check`: there is no central list to edit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar

from pydantic import create_model, field_validator, model_validator

from lab.core.settings import Settings
from lab.patterns.base import (
    Axis,
    Layer,
    ReadPath,
    Registration,
    StrategySettings,
    WritePath,
)

READ_PATHS: dict[str, type[ReadPath]] = {}
WRITE_PATHS: dict[str, type[WritePath]] = {}
STAMPEDE_GUARDS: dict[str, type[ReadPath]] = {}
LAYERS: dict[str, type[Layer]] = {}
REGISTRATIONS: list[Registration] = []
"""Every registration, in the order the modules registered them."""

P = TypeVar("P", bound=type[Any])


def _register(
    registry: dict[str, Any] | None,
    axis: Axis,
    name: str,
    settings: type[Settings] | None,
    field: str | None,
) -> Callable[[P], P]:
    def register(cls: P) -> P:
        if registry is not None and name in registry:
            raise ValueError(f"{axis} part {name!r} registered twice")
        registration = Registration(axis, name, cls, settings, field)
        cls.registration = registration
        if registry is not None:
            registry[name] = cls
        REGISTRATIONS.append(registration)
        return cls

    return register


def read_path(
    name: str, *, settings: type[Settings] | None = None, field: str | None = None
) -> Callable[[P], P]:
    """Class decorator: register a read path (`read: name`). Its settings are the block
    `field` of a strategy, allowed only with this read path; without a `field`, the
    model's fields are top-level strategy fields."""
    return _register(READ_PATHS, "read", name, settings, field)


def write_path(
    name: str, *, settings: type[Settings] | None = None, field: str | None = None
) -> Callable[[P], P]:
    """Class decorator: register a write path (`write: name`); settings as for `read_path`."""
    return _register(WRITE_PATHS, "write", name, settings, field)


def stampede_guard(name: str, *, settings: type[Settings] = Settings) -> Callable[[P], P]:
    """Class decorator: register a stampede guard (a guarded cache-aside read path), chosen
    by `stampede: {name: {settings}}`."""
    return _register(STAMPEDE_GUARDS, "stampede", name, settings, f"stampede.{name}")


def layer(name: str, *, settings: type[Settings]) -> Callable[[P], P]:
    """Class decorator: register a layer in front of the read and write paths, switched on
    by its settings block `name: {...}` in a strategy."""
    return _register(LAYERS, "layer", name, settings, name)


def cache_wrapper(name: str, *, settings: type[Settings]) -> Callable[[P], P]:
    """Class decorator: register the settings block `name` of a wrapper around the cache every
    part uses (the client's failure behaviour); the block is always there, with defaults."""
    return _register(None, "client", name, settings, name)


# --- the strategy model -------------------------------------------------------------------


class StrategyRules(StrategySettings):
    """The common settings checked against the registry: the parts named exist and fit
    together. `strategy_model()` adds every registered part's settings block to it."""

    @field_validator("read")
    @classmethod
    def _known_read(cls, value: str) -> str:
        if value not in READ_PATHS:
            raise ValueError(f"unknown read path {value!r}; known: {', '.join(sorted(READ_PATHS))}")
        return value

    @field_validator("write")
    @classmethod
    def _known_write(cls, value: str) -> str:
        if value not in WRITE_PATHS:
            raise ValueError(
                f"unknown write path {value!r}; known: {', '.join(sorted(WRITE_PATHS))}"
            )
        return value

    @model_validator(mode="after")
    def _parts_fit_together(self) -> StrategyRules:
        """The write side's rules first, then the read side's (the order in which a
        strategy with several problems reports its first)."""
        if self.ttl_jitter and self.ttl is None:
            raise ValueError("ttl_jitter spreads a ttl; give a ttl too")
        reader, writer = self.parts()
        self._blocks_fit("write")
        writer.check(self)
        if getattr(self, "stampede", None) is not None and self.read != "cache-aside":
            raise ValueError(
                "stampede guards wrap the cache-aside read path; use read: cache-aside"
            )
        reader.check(self)
        self._blocks_fit("read")
        return self

    def _blocks_fit(self, axis: Literal["read", "write"]) -> None:
        """A part's settings block is given only with that part."""
        chosen = self.read if axis == "read" else self.write
        for reg in REGISTRATIONS:
            if reg.axis != axis or reg.field is None or reg.name == chosen:
                continue
            if getattr(self, reg.field, None) is not None:
                raise ValueError(f"{reg.field} applies to {axis}: {reg.name} only")

    def parts(self) -> tuple[type[ReadPath], type[WritePath]]:
        """The read path (or the stampede guard that replaces it) and the write path."""
        stampede = getattr(self, "stampede", None)
        reader = STAMPEDE_GUARDS[stampede.kind] if stampede is not None else READ_PATHS[self.read]
        return reader, WRITE_PATHS[self.write]

    def layers(self) -> list[tuple[type[Layer], Settings]]:
        """The layers this strategy switches on, outermost first, with their settings."""
        on = [(cls, getattr(self, name, None)) for name, cls in LAYERS.items()]
        return [(cls, settings) for cls, settings in on if settings is not None]


class StampedeSettings(Settings):
    """Exactly one stampede guard, for example `{xfetch: {beta: 1}}` or `{coalesce: {}}`."""

    @model_validator(mode="before")
    @classmethod
    def _empty_means_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: ({} if v is None else v) for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> StampedeSettings:
        chosen = [name for name in STAMPEDE_GUARDS if getattr(self, name) is not None]
        if len(chosen) != 1:
            *others, last = STAMPEDE_GUARDS
            raise ValueError(f"give exactly one guard: {', '.join(others)} or {last}")
        return self

    @property
    def kind(self) -> str:
        """The name of the guard given."""
        return next(name for name in STAMPEDE_GUARDS if getattr(self, name) is not None)


def strategy_model() -> type[StrategyRules]:
    """The strategy model: the common settings plus every registered settings block, in the
    order guards, read paths, write paths, layers, shared top-level fields, client."""
    fields: dict[str, Any] = {}
    if STAMPEDE_GUARDS:
        guards: dict[str, Any] = {
            reg.name: (_optional(reg.settings), None) for reg in _on("stampede")
        }
        stampede = create_model(
            "StampedeSpec",
            __base__=StampedeSettings,
            __module__="lab.patterns",  # found there by name: worker processes unpickle it
            __doc__=StampedeSettings.__doc__,
            **guards,
        )
        fields["stampede"] = (stampede | None, None)
    for reg in [*_on("read"), *_on("write"), *_on("layer")]:
        if reg.settings is not None and reg.field is not None:
            _add(fields, reg.field, (_optional(reg.settings), None), reg)
    shared: dict[str, type[Settings]] = {}
    for reg in [*_on("read"), *_on("write")]:
        if reg.settings is not None and reg.field is None:
            for name, info in reg.settings.model_fields.items():
                if shared.get(name) is not reg.settings:
                    _add(fields, name, (info.annotation, info), reg)
                    shared[name] = reg.settings
    for reg in _on("client"):
        assert reg.settings is not None and reg.field is not None
        _add(fields, reg.field, (reg.settings, reg.settings()), reg)
    return create_model(
        "StrategySpec",
        __base__=StrategyRules,
        __module__="lab.patterns",
        __doc__="A strategy names its parts: `{read: cache-aside, write: invalidate, ttl: 5m}`.",
        **fields,
    )


def _optional(settings: type[Settings] | None) -> Any:
    """`settings | None`: a block that may be left out."""
    assert settings is not None
    return settings | None


def _on(axis: Axis) -> list[Registration]:
    return [reg for reg in REGISTRATIONS if reg.axis == axis]


def _add(fields: dict[str, Any], name: str, definition: Any, reg: Registration) -> None:
    if name in fields or name in StrategySettings.model_fields:
        raise ValueError(f"{reg.axis} part {reg.name!r}: strategy field {name!r} is taken")
    fields[name] = definition
