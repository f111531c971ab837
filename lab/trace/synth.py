"""A scenario's synthetic request stream, written as a trace file.

The requests are exactly those the client loop takes from
`lab.workload.stream.RequestStream` for the seed (the stream is only read):
with Poisson arrivals, every (intended start, is_write, key) with a start
before the scenario's `duration` (or its first `requests`); with a closed loop,
the (is_write, key) sequence in the order clients take it, and no times.

csv is the lossless format: times are written with repr(), which parses back
to the identical float64, and the op column keeps reads and writes apart, so a
replay (keys: identity) can reproduce the run. oracleGeneral keeps whole
seconds only and has no op column (every request reads as a get): it is for
other tools (libCacheSim), and the synthesizer says what was lost.
"""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lab.scenario import Scenario
from lab.tracefile.csvtrace import csv_header, write_csv_rows
from lab.tracefile.oracle import write_oracle_general
from lab.tracefile.source import detect_format, is_zstd
from lab.tracefile.spec import Format, TraceError
from lab.workload.stream import RequestStream
from lab.workload.values import ValueSizes, value_sizes

CHUNK = 1 << 16

Block = tuple[np.ndarray | None, np.ndarray, np.ndarray]  # time (or None), key, is_write


@dataclass
class Synthesized:
    """What was written, and what the format could not keep."""

    path: Path
    format: Format
    requests: int = 0
    writes: int = 0
    lost: list[str] = field(default_factory=list)


def _blocks(scenario: Scenario, seed: int, requests: int | None) -> Iterator[Block]:
    """The stream in numpy blocks, cut where the client loop would stop taking from it."""
    stream = RequestStream(scenario, seed)
    arrivals = scenario.workload.arrivals
    limit = requests if requests is not None else scenario.requests
    if arrivals.process == "poisson":
        assert arrivals.rate is not None
        timed = stream.timed(arrivals.rate)
        end = scenario.duration if scenario.duration is not None else float("inf")
        taken = 0
        while limit is None or taken < limit:
            want = CHUNK if limit is None else min(CHUNK, limit - taken)
            rows = list(itertools.islice(timed, want))
            if not rows:
                return
            time = np.array([r[0] for r in rows], dtype=np.float64)
            inside = int(np.searchsorted(time, end, side="left"))  # the loop stops at t >= end
            writes = np.array([r[1] for r in rows[:inside]], dtype=bool)
            keys = np.array([r[2] for r in rows[:inside]], dtype=np.int64)
            taken += inside
            yield time[:inside], keys, writes
            if inside < len(rows):
                return
        return
    assert limit is not None  # checked by synthesize() before anything is written
    pairs = stream.requests()
    for start in range(0, limit, CHUNK):
        taken_pairs = list(itertools.islice(pairs, min(CHUNK, limit - start)))
        yield (
            None,
            np.array([key for _, key in taken_pairs], dtype=np.int64),
            np.array([is_write for is_write, _ in taken_pairs], dtype=bool),
        )


def synthesize(
    scenario: Scenario,
    out: Path,
    fmt: Format | None = None,
    seed: int | None = None,
    requests: int | None = None,
) -> Synthesized:
    """Write the stream of `scenario` for `seed` (default: its first) to `out`, atomically."""
    fmt = detect_format(out, fmt)
    if fmt == "txt":
        raise TraceError(
            f"{out}: synth writes csv (lossless) or oracleGeneral; txt would keep the keys only"
        )
    if scenario.workload.arrivals.process == "closed" and (requests or scenario.requests) is None:
        raise TraceError(
            f"{scenario.name}: closed-loop arrivals run for a duration, so the number of "
            "requests depends on the run; give the number to write (--requests N)"
        )
    seed = scenario.seeds[0] if seed is None else seed
    done = Synthesized(out, fmt)
    size = value_sizes(scenario.keyspace, seed)
    blocks = _counted(_blocks(scenario, seed, requests), done)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".tmp-{out.name}-{os.getpid()}")
    try:
        if fmt == "csv":
            _write_csv(tmp, blocks, size, compress=is_zstd(out))
        else:
            _write_oracle(tmp, blocks, size, compress=is_zstd(out))
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fmt == "oracleGeneral":
        if done.writes:
            done.lost.append(f"its {done.writes} writes read as gets (no op column)")
        done.lost.append("times are whole seconds")
    return done


def _counted(blocks: Iterator[Block], done: Synthesized) -> Iterator[Block]:
    for block in blocks:
        done.requests += block[1].size
        done.writes += int(block[2].sum())
        yield block


def _write_csv(tmp: Path, blocks: Iterator[Block], size: ValueSizes, compress: bool) -> None:
    with tmp.open("wb") as raw:
        if compress:
            import zstandard

            sink = zstandard.ZstdCompressor().stream_writer(raw, closefd=False)
        else:
            sink = raw  # type: ignore[assignment]
        text = io.TextIOWrapper(sink, encoding="ascii", newline="\n")
        header_written = False
        for time, keys, writes in blocks:
            if not header_written:
                text.write(csv_header(time is not None, has_size=True))
                header_written = True
            write_csv_rows(text, time, keys, writes, size.array(keys))
        if not header_written:
            text.write(csv_header(True, has_size=True))
        text.flush()
        if compress:
            sink.flush(zstandard.FLUSH_FRAME)
        text.detach()


def _write_oracle(tmp: Path, blocks: Iterator[Block], size: ValueSizes, compress: bool) -> None:
    plain = tmp.with_name(tmp.name + ".plain") if compress else tmp
    try:
        write_oracle_general(
            plain,
            (
                (
                    time if time is not None else np.zeros(keys.size),
                    keys.astype(np.uint64),
                    size.array(keys),
                )
                for time, keys, _ in blocks
            ),
        )
        if compress:
            import zstandard

            with plain.open("rb") as src, tmp.open("wb") as dst:
                zstandard.ZstdCompressor().copy_stream(src, dst)
    finally:
        if compress:
            plain.unlink(missing_ok=True)
