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

Memory: exact ground truth would keep one ack time per acknowledged write
forever, since any old version may still be served by a cache. The oracle
keeps them for the versions the verdicts can realistically still need: all
versions superseded less than `horizon` seconds ago (60 s of simulated or
wall time by default; no shipped scenario runs that long, so their verdicts
are exact), and one version before them. Older versions are folded into runs
of version numbers (for lost writes, exact) and one ack time. A read that
returns such a version (it was superseded more than `horizon` ago, so it is
stale by at least that much) is still judged stale with its exact version
lag; its age is a lower bound (from the oldest ack time kept), and it is
counted in `floored`. Memory is then flat in the number of requests: per key,
the writes of the last `horizon` plus a constant.
"""

from __future__ import annotations

import math
from array import array

from lab.core import Key

_INF = array("d", (math.inf,))
HORIZON = 60.0
"""Seconds after which a superseded version's ack time is folded away (see above)."""
_PRUNE_MIN = 32  # a key's ack array is pruned only once it holds this many versions


class KeyHistory:
    """Ack times of a key's recent versions; `acks[i]` is version `base + i` (inf: not
    acked). Versions below `base` survive as `dropped` runs [lo, hi] of acked versions and
    `floor_t`, the latest ack time among them."""

    __slots__ = (
        "acks",
        "base",
        "dropped",
        "floor_t",
        "folded",
        "last_t",
        "max_acked",
        "prune_at",
    )

    def __init__(self, version: int, t: float) -> None:
        self.base = version
        self.acks = array("d", (t,))
        self.max_acked = version
        self.last_t = t  # acks[max_acked - base], as a float (the recorder's fast path)
        self.dropped: list[list[int]] = []
        self.floor_t = -math.inf
        self.folded = False  # whether versions below `base` were folded away
        self.prune_at = _PRUNE_MIN

    def prune(self, before: float) -> None:
        """Fold away versions superseded by a version acked at or before `before`, keeping
        that version (the newest such) as the new base."""
        acks = self.acks
        m = len(acks) - 1
        while m > 0 and not acks[m] <= before:
            m -= 1
        if m > 0:
            dropped = self.dropped
            for i in range(m):
                at = acks[i]
                if at == math.inf:
                    continue
                version = self.base + i
                if dropped and dropped[-1][1] == version - 1:
                    dropped[-1][1] = version
                else:
                    dropped.append([version, version])
                if at > self.floor_t:
                    self.floor_t = at
            del acks[:m]
            self.base += m
            self.folded = True
        self.prune_at = max(2 * len(acks), _PRUNE_MIN)


class Oracle:
    """Records acknowledged writes and judges reads against them."""

    def __init__(self, horizon: float = HORIZON) -> None:
        self.history: dict[Key, KeyHistory] = {}
        self.acked_writes = 0
        self.horizon = horizon
        self.floored = 0
        """Stale verdicts whose age is a lower bound (version older than the horizon)."""

    def ack(self, key: Key, version: int, t: float) -> None:
        """Version `version` of `key` was acknowledged to a client at time `t`
        (acks arrive in time order)."""
        self.acked_writes += 1
        h = self.history.get(key)
        if h is None:
            self.history[key] = KeyHistory(version, t)
            return
        i = version - h.base
        acks = h.acks
        if i < 0:
            if h.folded:  # below the kept window: its number, and the latest folded ack
                _add_run(h.dropped, version)
                h.floor_t = max(h.floor_t, t)
                return
            h.acks = acks = _INF * (-i) + acks  # out of order, below the first version seen
            h.base = version
            i = 0
        if i >= len(acks):
            acks.extend(_INF * (i + 1 - len(acks)))
        if t < acks[i]:
            acks[i] = t
        if version > h.max_acked:
            h.max_acked = version
            h.last_t = acks[i]
        elif version == h.max_acked:
            h.last_t = acks[i]
        if len(acks) >= h.prune_at:
            h.prune(t - self.horizon)

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
        if version + 1 < h.base and h.folded:  # newer versions folded away: age a lower bound
            return self._floored(h, version, t, first, newest)
        if newest < 0:
            return None
        return t - first, h.base + newest - version

    def _floored(
        self, h: KeyHistory, version: int, t: float, first: float, newest: int
    ) -> tuple[float, int] | None:
        """The verdict for a version whose successors were partly folded away. Every ack
        time used is that of some version newer than `version`, so it is no earlier than
        the true first one: the age is a lower bound (exact stale flag and lag for reads
        that began within the horizon, as the kept base was acked before it)."""
        folded_newest = max((hi for _, hi in h.dropped), default=version)
        if folded_newest > version and h.floor_t <= t:
            # floor_t, the latest folded ack, is no earlier than a newer version's ack
            first = min(first, h.floor_t)
        if first > t:
            return None
        self.floored += 1
        if newest >= 0:
            return t - first, h.base + newest - version
        return t - first, folded_newest - version

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
                lost += sum(max(0, hi - max(lo, final + 1) + 1) for lo, hi in h.dropped)
        return lost


def _add_run(runs: list[list[int]], version: int) -> None:
    """Add an acked version below the kept window to the folded runs (rare: an ack
    that arrives more than a horizon after newer versions were acknowledged)."""
    if any(lo <= version <= hi for lo, hi in runs):
        return  # acked again: already counted (extending a neighbour run would count it twice)
    runs.append([version, version])
    runs.sort()
    merged: list[list[int]] = []
    for lo, hi in runs:  # keep the runs disjoint: adjacent ones become one
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    runs[:] = merged
