"""Active expiry in the simulator against a real Redis: keys held in a short-TTL run.

The same stream of `SET key value PX ttl` (uniform over 100,000 keys, 4,000 a second,
TTL 1 s, for 6 s) goes to a real server, in 10-ms batches, and to a simulated node
(`RedisStore`, which runs Redis's expire cycle 10 times a second) at the wall-clock
times of the real batches. After each batch the server's DBSIZE is read and compared
with the simulated node's key count: over the last 4 s, the mean counts agree within
5% (and lazy expiry alone, the exact stores' model, would hold several times more).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from lab.codec import encode
from lab.core import Versioned
from lab.redis.binaries import available_binaries
from lab.redis.server import start_server
from lab.sim.eviction import RedisStore, make_store
from lab.sim.expiry import HZ
from lab.sim.store import Store

KEYS, RATE, TTL, SECONDS, BATCH_SECONDS = 100_000, 4000, 1.0, 6.0, 0.01
REDIS_7 = [b for b in available_binaries() if b.label.startswith("redis-7.")]


def stream(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, KEYS, size=int(RATE * SECONDS))


def run_real(keys: np.ndarray) -> tuple[list[float], list[int]]:
    """The send time of each batch and DBSIZE right after it."""
    value = encode(Versioned(1, 100))
    per_batch = int(RATE * BATCH_SECONDS)
    times: list[float] = []
    sizes: list[int] = []
    with start_server(binary=REDIS_7[0], save="", appendonly="no") as server:
        client = server.client()
        start = time.monotonic()
        for i in range(0, len(keys), per_batch):
            due = start + i / RATE
            time.sleep(max(0.0, due - time.monotonic()))
            pipe = client.pipeline(transaction=False)
            for key in keys[i : i + per_batch]:
                pipe.set(f"key:{key}", value, px=int(TTL * 1000))
            pipe.dbsize()
            times.append(time.monotonic() - start)
            sizes.append(pipe.execute()[-1])
    return times, sizes


def run_sim(keys: np.ndarray, times: list[float], store: Store) -> list[int]:
    value = Versioned(1, 100)
    per_batch = int(RATE * BATCH_SECONDS)
    sizes = []
    cron = 1.0 / HZ
    for b, now in enumerate(times):
        while isinstance(store, RedisStore) and cron <= now:
            store.cron(cron)
            cron += 1.0 / HZ
        for key in keys[b * per_batch : (b + 1) * per_batch].tolist():
            store.set(key, value, TTL, now)
        sizes.append(len(store))
    return sizes


@pytest.mark.skipif(not REDIS_7, reason="no redis-server 7.x here (the model is Redis 7.0's)")
def test_a_short_ttl_run_holds_as_many_keys_as_redis() -> None:
    keys = stream(3)
    times, real = run_real(keys)
    active = run_sim(keys, times, make_store(None, "noeviction", 1))
    lazy = run_sim(keys, times, make_store(None, "lru", 1))
    steady = [i for i, t in enumerate(times) if t >= 2.0]
    mean_real = float(np.mean([real[i] for i in steady]))
    mean_sim = float(np.mean([active[i] for i in steady]))
    mean_lazy = float(np.mean([lazy[i] for i in steady]))
    print(f"keys held: real {mean_real:.0f}, sim {mean_sim:.0f}, lazy only {mean_lazy:.0f}")
    assert abs(mean_sim - mean_real) / mean_real < 0.05
    assert mean_lazy > 2 * mean_real
