"""A trace as the lab's request stream: blocks of (replay time, is_write, key id, size).

Read one chunk at a time (`lab.tracefile.readers`), keys mapped by the trace's key
map, cut after `limit` requests: memory is one chunk plus the key table, whatever
the trace's length. At a speed, a request's replay time is `(time - start) / factor`
(with `start: 0` and `1x` the recorded float itself, which is what lets a
`trace synth` replay reproduce its run); times must not go backwards, since an
open loop cannot start a request before the one it already started.

`scan` reads what a replay will read once, before any run, so that every bad line
is reported before anything is written, and says how many requests and distinct
keys there are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from lab.tracefile.chunk import Chunk
from lab.tracefile.keymap import key_map
from lab.tracefile.readers import CHUNK, open_trace
from lab.tracefile.replay_spec import TraceReplay
from lab.tracefile.sizes import KeySizes
from lab.tracefile.spec import TraceError

Block = tuple[np.ndarray | None, np.ndarray, np.ndarray, np.ndarray | None]
"""Replay times (None in order-only replays), is_write, int64 key ids, int64 sizes
(None in a synthetic stream's blocks: the keyspace's sizes)."""


def _head(part: Chunk, n: int) -> Chunk:
    """The first n requests of a chunk."""
    cut = {
        name: getattr(part, name)[:n]
        for name in ("time", "key", "size", "write", "origin", "next_access")
        if getattr(part, name) is not None
    }
    return dataclasses.replace(part, **cut)


class _Clock:
    """Trace times -> replay times, checking that they never go backwards."""

    def __init__(self, trace: TraceReplay) -> None:
        self.path = trace.resolved
        self.factor = trace.factor or 1.0
        self.start: float | None = None if trace.start == "first" else float(trace.start)
        self.last = -np.inf

    def __call__(self, part: Chunk) -> np.ndarray:
        t = part.time
        if self.start is None:
            self.start = float(t[0])
        back = np.flatnonzero(np.diff(t, prepend=self.last) < 0)
        if back.size:
            at = int(back[0])
            before = t[at - 1] if at else self.last
            raise TraceError(
                f"{self.path}: {part.where(at)}: time {t[at]:g} is before the previous "
                f"request's {before:g}; sort the trace by time, or replay it with "
                "speed: order-only"
            )
        early = np.flatnonzero(t < self.start)
        if early.size:
            at = int(early[0])
            raise TraceError(
                f"{self.path}: {part.where(at)}: time {t[at]:g} is before start "
                f"({self.start:g}); lower start or cut the trace"
            )
        self.last = float(t[-1])
        if self.start == 0.0 and self.factor == 1.0:
            return np.asarray(t, dtype=np.float64)  # the recorded floats, bit for bit
        return np.asarray((t - self.start) / self.factor)


def replay_blocks(
    trace: TraceReplay, keyspace: int, limit: int | None = None, chunk: int = CHUNK
) -> Iterator[Block]:
    """The trace's requests, `limit` at most, one reader chunk at a time.

    `keyspace` is the scenario's key count (identity keys must lie below it)."""
    spec = trace.model_copy(update={"path": trace.resolved})
    reader = open_trace(spec, chunk)
    keys = key_map(trace.keys, trace.resolved, keyspace)
    clock = _Clock(trace) if trace.timed else None
    taken = 0
    for part in reader.chunks():
        if limit is not None:
            if taken >= limit:
                return
            if taken + len(part) > limit:
                part = _head(part, limit - taken)
        taken += len(part)
        times = clock(part) if clock is not None else None
        yield times, np.asarray(part.write, dtype=bool), keys.map(part), part.size


@dataclass(frozen=True)
class TraceInfo:
    """What a replay will read: requests (after the cut), writes, distinct key ids, the
    replay time of the last request (None in order-only replays), each key's size
    (None when the trace records none) and whether every request had one."""

    requests: int
    writes: int
    keys: int
    last_time: float | None
    sizes: KeySizes | None
    every_request_sized: bool


def scan(
    trace: TraceReplay, keyspace: int, limit: int | None, end: float | None, chunk: int = CHUNK
) -> TraceInfo:
    """Read what the replay will (up to `limit` requests, and in timed replays up to the
    first request at or after `end`), raising TraceError on the first bad line."""
    requests = writes = unsized = 0
    last: float | None = None
    ids_seen = -1
    sizes = KeySizes(dense=trace.keys == "dense")
    for times, write, ids, size in replay_blocks(trace, keyspace, limit, chunk):
        inside = ids.size
        assert size is not None  # a trace's blocks always carry sizes (NO_SIZE if unknown)
        if times is not None and end is not None:
            inside = int(np.searchsorted(times, end, side="left"))
        if inside:
            requests += inside
            writes += int(write[:inside].sum())
            ids_seen = max(ids_seen, int(ids[:inside].max()))
            unsized += int((size[:inside] <= 0).sum())
            sizes.add(ids[:inside], size[:inside])
            if times is not None:
                last = float(times[inside - 1])
        if inside < ids.size:
            break  # the open loop stops at the first request at or after the end
    if not requests:
        raise TraceError(f"{trace.resolved}: no requests to replay; check the file and its cut")
    keys = keyspace if trace.keys == "identity" else ids_seen + 1
    known = sizes if sizes.known.size else None
    return TraceInfo(requests, writes, keys, last, known, unsized == 0)
