"""Strategy parts. Importing this package imports every module in it; each module
registers its parts, with their settings, by name (see `registry.py`), and
`StrategySpec`, the model a scenario's strategies are validated with, is built
from those registrations."""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

from lab.patterns.base import Layer, ReadPath, StrategySettings, Wiring, WritePath
from lab.patterns.compose import Strategy, build_strategy
from lab.patterns.registry import (
    LAYERS,
    READ_PATHS,
    REGISTRATIONS,
    STAMPEDE_GUARDS,
    WRITE_PATHS,
    StrategyRules,
    strategy_model,
)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

if TYPE_CHECKING:
    StrategySpec = StrategyRules
else:
    StrategySpec = strategy_model()
    """A strategy of a scenario: the common settings and every registered part's block."""
    # the stampede block's model, by name, so a scenario pickles (worker processes)
    StampedeSpec = StrategySpec.model_fields["stampede"].annotation.__args__[0]

__all__ = [
    "LAYERS",
    "READ_PATHS",
    "REGISTRATIONS",
    "STAMPEDE_GUARDS",
    "WRITE_PATHS",
    "Layer",
    "ReadPath",
    "Strategy",
    "StrategyRules",
    "StrategySettings",
    "StrategySpec",
    "Wiring",
    "WritePath",
    "build_strategy",
]
