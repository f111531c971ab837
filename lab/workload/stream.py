"""The request stream of a scenario: identical for every strategy and backend.

Generated in numpy chunks from the run seed alone (never from anything a
strategy does), so every strategy of a scenario faces exactly the same
requests: the comparison is paired, as in Caffeine's simulator.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import numpy as np

from lab.sampling import rng_for
from lab.scenario import Scenario
from lab.workload.keys import KeyGenerator

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

    def _chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
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
            yield is_write, keys.draw(is_write)
            if remaining is not None:
                remaining -= n
            if self.on_chunk is not None:
                self.on_chunk(n)

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
