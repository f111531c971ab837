"""Protocols shared by strategies and backends."""

from lab.core.protocols import Bus, Cache, Metrics, NoMetrics, Origin
from lab.core.runtime import Queue, Runtime
from lab.core.values import Key, Read, SizeOf, Source, Versioned, size_of

__all__ = [
    "Bus",
    "Cache",
    "Key",
    "Metrics",
    "NoMetrics",
    "Origin",
    "Queue",
    "Read",
    "Runtime",
    "SizeOf",
    "Source",
    "Versioned",
    "size_of",
]
