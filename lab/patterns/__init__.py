"""Strategy parts. Importing this package imports every module in it, and each
module registers its parts by name (see `base.read_path` / `base.write_path`)."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lab.core import Bus, Cache, Metrics, Origin, Runtime
from lab.core.versions import VersionClock
from lab.patterns.base import READ_PATHS, STAMPEDE_GUARDS, WRITE_PATHS, ReadPath, WritePath

if TYPE_CHECKING:
    from lab.scenario import StrategySpec

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")


@dataclass(frozen=True, slots=True)
class Strategy:
    """A composed strategy: the read path and the write path a client calls."""

    name: str
    reader: ReadPath
    writer: WritePath

    @property
    def requires(self) -> frozenset[str]:
        return self.reader.needs() | self.writer.needs()

    async def close(self) -> None:
        await self.reader.close()
        await self.writer.close()


def build_strategy(
    name: str,
    spec: StrategySpec,
    cache: Cache,
    origin: Origin,
    rt: Runtime,
    seed: int = 0,
    *,
    metrics: Metrics | None = None,
    value_size: int = 1024,
    versions: VersionClock | None = None,
    bus: Bus | None = None,
    resilient: bool = False,
) -> Strategy:
    """Instantiate the parts a strategy spec names, wired to one backend.

    `seed` feeds the parts' own random draws (one value per app instance). With
    `resilient`, the parts see the cache through the strategy's client behaviour
    (timeouts, retries, fallback, breaker): runs with faults need it."""
    if resilient:
        from lab.core import NoMetrics
        from lab.patterns.resilience import ResilientCache

        cache = ResilientCache(cache, rt, spec.client, metrics or NoMetrics())
    reader_class = (
        STAMPEDE_GUARDS[spec.stampede.kind] if spec.stampede is not None else READ_PATHS[spec.read]
    )
    options = {"metrics": metrics, "value_size": value_size, "versions": versions}
    reader = reader_class(cache, origin, rt, spec, seed, **options)  # type: ignore[arg-type]
    writer = WRITE_PATHS[spec.write](cache, origin, rt, spec, seed, **options)  # type: ignore[arg-type]
    if spec.near is not None:
        from lab.patterns.near_cache import NearCache, NearReader, NearWriter

        near = NearCache(spec.near, bus, seed)
        reader, writer = NearReader(reader, near), NearWriter(writer, near)
    return Strategy(name, reader, writer)


__all__ = [
    "READ_PATHS",
    "STAMPEDE_GUARDS",
    "WRITE_PATHS",
    "ReadPath",
    "Strategy",
    "WritePath",
    "build_strategy",
]
