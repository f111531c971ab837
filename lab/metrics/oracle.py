"""The oracle: ground truth of every acknowledged write, and the staleness judge.

Definitions (docs/architecture.md has the reasoning):
- a read that starts at `t` and returns version `v` is stale if a newer
  version of the key was acknowledged at or before `t` (at `t` included: a
  client that reads right after its own acknowledged write must see it);
  writes acknowledged after the read began do not make it stale;
- its staleness age is `t` minus the earliest acknowledgement, at or before
  `t`, of a version newer than `v`; its version lag is the newest version
  acknowledged at or before `t` minus `v`;
- a lost write is an acknowledged version newer than the final state of the
  origin (nothing can ever read it again).

Memory: 8 bytes per acknowledged write (an array of doubles per key). That is
the price of exact ground truth: any old version may still be served by a
cache, and its staleness age needs the time its successor was acknowledged.
"""

from __future__ import annotations

import math
from array import array

from lab.core import Key

_INF = array("d", (math.inf,))


class KeyHistory:
    """Ack times of a key's versions; `acks[i]` is version `base + i` (inf: not acked)."""

    __slots__ = ("acks", "base", "max_acked")

    def __init__(self, version: int, t: float) -> None:
        self.base = version
        self.acks = array("d", (t,))
        self.max_acked = version


class Oracle:
    """Records acknowledged writes and judges reads against them."""

    def __init__(self) -> None:
        self.history: dict[Key, KeyHistory] = {}
        self.acked_writes = 0

    def ack(self, key: Key, version: int, t: float) -> None:
        """Version `version` of `key` was acknowledged to a client at time `t`."""
        self.acked_writes += 1
        h = self.history.get(key)
        if h is None:
            self.history[key] = KeyHistory(version, t)
            return
        i = version - h.base
        acks = h.acks
        if i < 0:  # acknowledged out of order, below the first version seen
            h.acks = acks = _INF * (-i) + acks
            h.base = version
            i = 0
        if i >= len(acks):
            acks.extend(_INF * (i + 1 - len(acks)))
        if t < acks[i]:
            acks[i] = t
        if version > h.max_acked:
            h.max_acked = version

    def judge(self, key: Key, version: int, t: float) -> tuple[float, int] | None:
        """None if a read of `version` starting at `t` is fresh, else (age, version lag)."""
        h = self.history.get(key)
        if h is None or version >= h.max_acked:
            return None
        acks = h.acks
        first = math.inf
        newest = -1
        for i in range(max(version + 1 - h.base, 0), len(acks)):
            at = acks[i]
            if at <= t:
                if at < first:
                    first = at
                newest = i
        if newest < 0:
            return None
        return t - first, h.base + newest - version

    def latest(self, key: Key) -> int:
        """The newest acknowledged version of `key` (0 if never written)."""
        h = self.history.get(key)
        return h.max_acked if h is not None else 0

    def lost_writes(self, final_versions: dict[Key, int]) -> int:
        """Acknowledged versions newer than what the origin finally holds."""
        lost = 0
        for key, h in self.history.items():
            final = final_versions.get(key, 0)
            if h.max_acked > final:
                lost += sum(
                    1 for i, at in enumerate(h.acks) if h.base + i > final and at != math.inf
                )
        return lost
