"""Composing a strategy: the parts a strategy's settings name, wired to one backend.

The chain, from the client inwards: the layers the strategy switches on (a
near cache), then the read path (or the stampede guard replacing it) and the
write path, which use the cache through the client's failure behaviour when
the run asks for it. Each piece is handed what it needs; none reaches into
another.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol

from lab.core import (
    Bus,
    Cache,
    Key,
    Metrics,
    NoMetrics,
    Origin,
    Read,
    Runtime,
    SizeOf,
    Versioned,
)
from lab.core.versions import VersionClock
from lab.patterns.base import Capabilities, Layer, NextRead, NextWrite, Part, Wiring
from lab.patterns.registry import StrategyRules
from lab.patterns.resilience import RefusedFills, ResilientCache


class Reader(Protocol):
    def read(self, key: Key) -> Awaitable[Read]: ...


class Writer(Protocol):
    def write(self, key: Key) -> Awaitable[Versioned]: ...


class LayeredReader:
    """Reads that go to `layer` first, with the reader behind it as its `next`."""

    __slots__ = ("_layer", "_next")

    def __init__(self, layer: Layer, inner: Reader) -> None:
        self._layer = layer
        self._next: NextRead = inner.read

    def read(self, key: Key) -> Awaitable[Read]:
        return self._layer.read(key, self._next)


class LayeredWriter:
    """Writes that go to `layer` first, with the writer behind it as its `next`."""

    __slots__ = ("_layer", "_next")

    def __init__(self, layer: Layer, inner: Writer) -> None:
        self._layer = layer
        self._next: NextWrite = inner.write

    def write(self, key: Key) -> Awaitable[Versioned]:
        return self._layer.write(key, self._next)


@dataclass(frozen=True, slots=True)
class Strategy:
    """A composed strategy: what a client calls to read and to write, and its parts."""

    name: str
    reader: Reader
    writer: Writer
    parts: tuple[Part | Layer, ...]
    """Every part and layer, innermost first: asked what they need, closed in this order."""

    @property
    def requires(self) -> Capabilities:
        """The backend capabilities the parts need."""
        return frozenset().union(*(part.needs() for part in self.parts))

    async def close(self) -> None:
        for part in self.parts:
            await part.close()


def build_strategy(
    name: str,
    spec: StrategyRules,
    cache: Cache,
    origin: Origin,
    rt: Runtime,
    seed: int = 0,
    *,
    metrics: Metrics | None = None,
    value_size: int | SizeOf = 1024,
    versions: VersionClock | None = None,
    bus: Bus | None = None,
    resilient: bool = False,
) -> Strategy:
    """Instantiate the parts a strategy's settings name, wired to one backend.

    `seed` feeds the parts' own random draws (one value per app instance). With
    `resilient`, the parts see the cache through the strategy's client behaviour
    (timeouts, retries, fallback, breaker): runs with faults need it."""
    metrics = metrics if metrics is not None else NoMetrics()
    seen: Cache = (
        ResilientCache(cache, rt, spec.client, metrics)
        if resilient
        else RefusedFills(cache, metrics)
    )
    wiring = Wiring(
        seen,
        origin,
        rt,
        seed,
        raw_cache=cache,
        metrics=metrics,
        value_size=value_size,
        versions=versions if versions is not None else VersionClock(),
        bus=bus,
    )
    read_path, write_path = spec.parts()
    reader_part, writer_part = read_path(wiring, spec), write_path(wiring, spec)
    reader_part.watch(writer_part)
    reader: Reader = reader_part
    writer: Writer = writer_part
    layers = [layer(wiring, settings) for layer, settings in spec.layers()]
    for layer in reversed(layers):  # the first listed is the outermost
        reader, writer = LayeredReader(layer, reader), LayeredWriter(layer, writer)
    return Strategy(name, reader, writer, (reader_part, writer_part, *layers))
