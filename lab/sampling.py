"""Seeded random streams and fast samplers drawn in numpy chunks.

Each consumer (workload, network, origin, ...) gets its own stream derived from
the run seed and a stable name, so adding a consumer never shifts another's
numbers, and every strategy of a scenario sees identical draws (common random
numbers make strategy comparisons far less noisy).
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Callable, Iterator

import numpy as np

from lab.scenario import Distribution, lognormal_sigma

CHUNK = 8192

Sampler = Callable[[], float]

ZERO: Sampler = itertools.repeat(0.0).__next__
"""Draws 0 every time: the round trip of an origin with no network in front of it."""


def rng_for(seed: int, stream: str, draw: int = 0) -> np.random.Generator:
    """An independent generator for (`seed`, `stream`), stable across versions of the lab.
    `draw` > 0: another independent generator for the same pair (`SimBackend(draw=k)`
    re-draws the simulator's own randomness this way); draw 0 is the seed's own."""
    key = [seed, zlib.crc32(stream.encode())]
    return np.random.default_rng([*key, draw] if draw else key)


def draw(dist: Distribution, rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` samples of `dist` in seconds, vectorized."""
    kind = dist.distribution
    if kind == "constant":
        return np.full(n, float(dist.value or 0.0))
    if kind == "exponential":
        return rng.exponential(float(dist.mean or 0.0), n)
    if kind == "uniform":
        return rng.uniform(float(dist.low or 0.0), float(dist.high or 0.0), n)
    assert dist.median is not None and dist.p99 is not None
    return rng.lognormal(math.log(dist.median), lognormal_sigma(dist.median, dist.p99), n)


def sampler(dist: Distribution, rng: np.random.Generator) -> Sampler:
    """A zero-argument callable returning the next sample; one C-level call per sample."""
    if dist.distribution == "constant":
        return itertools.repeat(float(dist.value or 0.0)).__next__

    def chunks() -> Iterator[list[float]]:
        while True:
            yield draw(dist, rng, CHUNK).tolist()

    return itertools.chain.from_iterable(chunks()).__next__
