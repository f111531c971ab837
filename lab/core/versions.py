"""Version numbers for writes whose version is chosen before the origin sees them.

Write-behind acknowledges a write when the cache takes it, so the version the
oracle records must be chosen then, not at the origin's commit. This clock
hands out per-key increasing versions for the whole run (all app instances).
It is instrumentation, like a Lamport clock, not part of the pattern: taking
versions from a cache counter instead would let an evicted counter rewind
them and report staleness that the pattern did not cause.
"""

from __future__ import annotations

from lab.core.values import Key


class VersionClock:
    """Per-key counters starting after the origin's initial version 0."""

    def __init__(self) -> None:
        self._last: dict[Key, int] = {}

    def next(self, key: Key) -> int:
        version = self._last.get(key, 0) + 1
        self._last[key] = version
        return version
