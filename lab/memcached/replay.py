"""One key stream replayed on a real memcached and on the slab model, for comparison.

A read-through loop: GET each key, SET it on a miss (with its value size),
as cache-aside does. The real side drives a server with pymemcache on one
connection (SETs with noreply, so a run is quick); the model side replays the
same keys at the same instants (seconds since the first request) into a
`lab.slabs.SlabCache`. Both count hits over the measured part (after the
first `warmup` fraction of requests), items and bytes at the end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from pymemcache.client.base import Client

from lab.memcached.control import Address, stats
from lab.slabs import SlabCache, item_size


@dataclass
class Replay:
    hit_ratio: float
    items: int
    bytes: int
    evictions: int
    times: np.ndarray


def stream(
    keys: int, requests: int, seed: int, *, zipf: float = 0.9, sizes: tuple[int, ...] = (1000,)
) -> tuple[np.ndarray, np.ndarray]:
    """Zipf-popular key ids (ranks shuffled) and each key's value size (one of `sizes`,
    drawn per key)."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, keys + 1) ** zipf
    ranks = rng.choice(keys, size=requests, p=weights / weights.sum())
    ids = rng.permutation(keys)[ranks]
    per_key = rng.choice(np.array(sizes), size=keys)
    return ids, per_key


def replay_real(address: Address, ids: np.ndarray, sizes: np.ndarray, warmup: float) -> Replay:
    client = Client(address, default_noreply=True, no_delay=True, connect_timeout=5, timeout=10)
    start = int(len(ids) * warmup)
    hits = 0
    times = np.empty(len(ids))
    t0 = time.monotonic()
    values = {int(s): b"x" * int(s) for s in np.unique(sizes)}
    try:
        for i, key in enumerate(ids.tolist()):
            times[i] = time.monotonic() - t0
            name = b"key:%d" % key
            if client.get(name) is not None:
                hits += i >= start
            else:
                client.set(name, values[int(sizes[key])])
        client.version()  # every noreply SET has been processed
    finally:
        client.close()
    info = stats(address)
    return Replay(
        hits / (len(ids) - start),
        int(info["curr_items"]),
        int(info["bytes"]),
        int(info["evictions"]),
        times,
    )


def replay_model(
    ids: np.ndarray,
    sizes: np.ndarray,
    times: np.ndarray,
    warmup: float,
    *,
    memory: int,
    growth_factor: float = 1.25,
    min_chunk: int = 48,
) -> Replay:
    cache = SlabCache(memory, growth_factor, min_chunk)
    start = int(len(ids) * warmup)
    hits = 0
    inf = float("inf")
    for i, (key, now) in enumerate(zip(ids.tolist(), times.tolist(), strict=True)):
        if cache.get(key, now) is not None:
            hits += i >= start
        else:
            size = item_size(len(b"key:%d" % key), int(sizes[key]))
            cache.set(key, True, size, inf, now)
    return Replay(hits / (len(ids) - start), len(cache), cache.bytes, cache.evictions, times)
