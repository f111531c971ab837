"""A block of consecutive trace requests as fixed-type numpy arrays.

Every reader yields these, whatever the file format, so the key mapping, the
statistics and (next) the replay are written once. A chunk holds at most the
reader's chunk size of requests: a trace of any length is processed in
memory bounded by the chunk size (plus what the consumer keeps per key).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NO_SIZE = -1
"""`size` of a request whose format records none (txt, csv without a size column)."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """Requests `start`.. of the trace (0-based, after skipped records).

    `key` is uint64 for numeric ids (oracleGeneral) or an object array of str for
    text keys (csv, txt); `lab.tracefile.keymap` turns either into lab key ids.
    `time` is float64 seconds (NaN when the format has none), `size` int64 bytes
    (NO_SIZE when unknown), `write` bool. `origin` holds, per request, the 1-based
    line or record number in the file, for error messages that point at it.
    """

    start: int
    time: np.ndarray
    key: np.ndarray
    size: np.ndarray
    write: np.ndarray
    origin: np.ndarray
    unit: str  # "line" or "record"
    next_access: np.ndarray | None = None
    """oracleGeneral only: the 1-based record number of the key's next request, -1 if
    none (libCacheSim writes -1; INT64_MAX, which it also reads as none, becomes -1)."""

    def __len__(self) -> int:
        return int(self.key.shape[0])

    def where(self, index: int) -> str:
        """'line 12' / 'record 5' for the request at `index` in this chunk."""
        return f"{self.unit} {int(self.origin[index])}"
