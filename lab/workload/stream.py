"""The request stream of a scenario: identical for every strategy and backend.

Generated in numpy chunks from the run seed alone (never from anything a
strategy does), so every strategy of a scenario faces exactly the same
requests: the comparison is paired, as in Caffeine's simulator. With
`workload.trace` the requests are a recorded trace's, read a chunk at a time
(`lab.tracefile.replay`), in pieces of the same CHUNK so that Poisson arrivals
under an order-only replay are drawn exactly as for a synthetic stream.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator

import numpy as np

from lab.core import Key
from lab.sampling import rng_for
from lab.scenario import Scenario, ScenarioError
from lab.tracefile.readers import CHUNK as TRACE_CHUNK
from lab.tracefile.replay import Block, TraceInfo, replay_blocks, scan
from lab.tracefile.sizes import KeySizes
from lab.tracefile.spec import TraceError
from lab.workload.keys import KeyGenerator
from lab.workload.values import ValueSizes, value_sizes

CHUNK = 8192

Request = tuple[bool, int]
TimedRequest = tuple[float, bool, int]


class RequestStream:
    """Chunks of (is_write, key), plus intended start times for open-loop arrivals."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        on_chunk: Callable[[int], None] | None = None,
    ) -> None:
        self.scenario = scenario
        self.seed = seed
        self.on_chunk = on_chunk
        self.limit = scenario.requests
        self.trace_chunk = TRACE_CHUNK
        """Requests a trace is read in at a time (tests make it small)."""

    def _blocks(self) -> Iterator[Block]:
        """(replay times or None, is_write, keys, sizes) in pieces of at most CHUNK."""
        trace = self.scenario.workload.trace
        if trace is None:
            source = self._synthetic()
        else:
            source = replay_blocks(trace, self.scenario.keyspace.keys, self.limit, self.trace_chunk)
        for block in source:
            n = block[1].size
            for at in range(0, n, CHUNK):
                piece = tuple(a[at : at + CHUNK] if a is not None else None for a in block)
                yield piece  # type: ignore[misc]
                if self.on_chunk is not None:
                    self.on_chunk(min(CHUNK, n - at))

    def _synthetic(self) -> Iterator[Block]:
        workload = self.scenario.workload
        ops_rng = rng_for(self.seed, "workload.ops")
        keys = KeyGenerator(
            workload.keys, self.scenario.keyspace.keys, rng_for(self.seed, "workload.keys")
        )
        write_fraction = workload.mix.write_fraction
        remaining = self.limit
        while remaining is None or remaining > 0:
            n = CHUNK if remaining is None else min(CHUNK, remaining)
            is_write = ops_rng.random(n) < write_fraction
            yield None, is_write, keys.draw(is_write), None  # sizes: the keyspace's
            if remaining is not None:
                remaining -= n

    def _chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for _, is_write, keys, _ in self._blocks():
            yield is_write, keys

    def requests(self) -> Iterator[Request]:
        """(is_write, key) pairs, for closed-loop clients pulling the next request."""
        return itertools.chain.from_iterable(
            zip(w.tolist(), k.tolist(), strict=True) for w, k in self._chunks()
        )

    def timed(self, rate: float) -> Iterator[TimedRequest]:
        """(intended start, is_write, key) with Poisson arrivals at `rate` per second."""
        arrivals_rng = rng_for(self.seed, "workload.arrivals")

        def chunks() -> Iterator[Iterator[TimedRequest]]:
            last = 0.0
            for is_write, keys in self._chunks():
                times = last + np.cumsum(arrivals_rng.exponential(1.0 / rate, is_write.size))
                last = float(times[-1])
                yield zip(times.tolist(), is_write.tolist(), keys.tolist(), strict=True)

        return itertools.chain.from_iterable(chunks())

    def recorded(self) -> Iterator[TimedRequest]:
        """(replay time, is_write, key) at the trace's own times (a timed trace replay)."""

        def chunks() -> Iterator[Iterator[TimedRequest]]:
            for times, is_write, keys, _ in self._blocks():
                assert times is not None, "recorded() needs a trace replayed at a speed"
                yield zip(times.tolist(), is_write.tolist(), keys.tolist(), strict=True)

        return itertools.chain.from_iterable(chunks())

    def arrivals(self) -> Iterator[TimedRequest]:
        """The open loop's requests: at the trace's times, or Poisson at the rate."""
        trace = self.scenario.workload.trace
        if trace is not None and trace.timed:
            return self.recorded()
        rate = self.scenario.workload.arrivals.rate
        assert rate is not None, "open-loop arrivals need a rate"
        return self.timed(rate)


_SCANNED: dict[tuple[str, int, int | None, float | None], TraceInfo] = {}
"""Scans by file version, spec, keyspace and cut: a scenario's cells read the trace once."""


def trace_info(scenario: Scenario, source: str | None = None) -> TraceInfo | None:
    """What a scenario's trace replay will read (None without a trace), read once per
    file version and cut; a bad line is a ScenarioError naming workload.trace."""
    trace = scenario.workload.trace
    if trace is None:
        return None
    end = scenario.duration if trace.timed else None
    try:
        stat = trace.resolved.stat()
        version = f"{trace.resolved}:{stat.st_mtime_ns}:{stat.st_size}:{trace.model_dump_json()}"
        key = (version, scenario.keyspace.keys, scenario.requests, end)
        info = _SCANNED.get(key)
        if info is None:
            if len(_SCANNED) >= 8:
                _SCANNED.clear()
            info = _SCANNED[key] = scan(
                trace, scenario.keyspace.keys, scenario.requests, end, TRACE_CHUNK
            )
        return info
    except (TraceError, OSError) as exc:
        raise ScenarioError(f"{source or scenario.name}: workload.trace: {exc}") from None


class TraceSizes(ValueSizes):
    """A replayed trace's sizes as the run's value sizes: each key's size in the trace
    (`lab.tracefile.sizes`), else the keyspace's for that key."""

    def __init__(self, known: KeySizes, fallback: ValueSizes, every_request_sized: bool) -> None:
        self.spec = fallback.spec
        self._known, self._fallback = known, fallback
        sizes = known.known
        same = int(sizes[0]) if sizes.size and (sizes == sizes[0]).all() else None
        complete = every_request_sized or fallback.constant == same
        self.constant = same if complete else None
        self._mean = float(sizes.mean())

    def __call__(self, key: Key) -> int:
        if isinstance(key, int):
            size = self._known.get(key)
            if size > 0:
                return size
        return self._fallback(key)

    def array(self, keys: np.ndarray) -> np.ndarray:
        out = self._known.lookup(keys)
        missing = np.flatnonzero(out <= 0)
        if missing.size:
            out[missing] = self._fallback.array(np.asarray(keys)[missing])
        return out

    @property
    def mean(self) -> float:
        """The mean over the keys the trace gives a size."""
        return self._mean


def _trace_sizes(scenario: Scenario, info: TraceInfo, seed: int) -> int | ValueSizes | None:
    """The value sizes a replay runs with: None if the trace records none; a plain size
    when every key has the same one (as for a synthetic constant size)."""
    if info.sizes is None:
        return None
    sizes = TraceSizes(info.sizes, value_sizes(scenario.keyspace, seed), info.every_request_sized)
    return sizes.constant if sizes.constant is not None else sizes


def prepared(scenario: Scenario, seed: int) -> Scenario:
    """The scenario as a run uses it: a dense-keyed trace's keyspace is its distinct keys
    (the lab sizes its owner table by it), its value sizes are the trace's, and
    `warmup: N requests` becomes the intended start of request N+1 (open loop), so
    everything downstream sees a warm-up time."""
    update: dict[str, object] = {}
    info = trace_info(scenario)
    trace = scenario.workload.trace
    if info is not None and trace is not None:
        keyspace: dict[str, object] = {}
        if trace.keys == "dense":
            keyspace["keys"] = max(info.keys, 1)
        sizes = _trace_sizes(scenario, info, seed)
        if sizes is not None:
            keyspace["value_size"] = sizes
        if keyspace:
            update["keyspace"] = scenario.keyspace.model_copy(update=keyspace)
    count = scenario.warmup_requests
    if count is not None:
        if info is not None and count >= info.requests:
            raise ScenarioError(
                f"{scenario.name}: warmup: {count} requests, but the trace replays only "
                f"{info.requests}; make it smaller"
            )
        stream = RequestStream(scenario.model_copy(update=update), seed)
        first_measured = next(itertools.islice(stream.arrivals(), count, None), None)
        update["warmup"] = first_measured[0] if first_measured is not None else math.inf
    return scenario.model_copy(update=update) if update else scenario
