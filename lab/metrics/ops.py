"""Latency of single cache operations (GET, SET, DEL, ...), as a cache dashboard shows it.

A request's latency (the recorder) includes the origin on a miss and every
cache call a pattern makes; the article's monitoring list also asks for the
cache's own p50/p99 operation time. Backends add each successful operation's
time with one list append on their hot path (the simulator resets them at
the end of the warm-up; real servers only count operations started after
it); the list is folded into a histogram at every gauge sample and at the
end, so memory stays bounded.
"""

from __future__ import annotations

import math
from array import array
from typing import Any

import numpy as np

from lab.metrics.histogram import LogHistogram


class OpLatencies:
    """Cache operation times after the warm-up, in seconds."""

    __slots__ = ("_pending", "add", "hist")

    def __init__(self) -> None:
        self.hist = LogHistogram()
        self._pending = array("d")  # folded with one memcpy, not a float per item
        self.add = self._pending.append
        """Record one operation's time (the caller decides it is past the warm-up)."""

    def reset(self) -> None:
        """Forget everything so far (at the end of the warm-up)."""
        del self._pending[:]
        self.hist = LogHistogram()

    def fold(self) -> None:
        """Move what was added into the histogram."""
        if self._pending:
            self.hist.record_many(np.frombuffer(self._pending, dtype=np.float64).copy())
            del self._pending[:]

    def summary(self) -> dict[str, Any]:
        self.fold()
        hist = self.hist
        if not hist.total:
            return {"cache_ops": 0, "cache_op_p50": None, "cache_op_p99": None}
        p50, p99 = hist.percentile(50), hist.percentile(99)
        return {
            "cache_ops": int(hist.total),
            "cache_op_p50": None if math.isnan(p50) else p50,
            "cache_op_p99": None if math.isnan(p99) else p99,
        }
