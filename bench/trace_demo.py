"""Writes scenarios/traces/trace-replay.csv.zst, the small trace `scenarios/trace-replay.yaml`
replays (committed: a few hundred kB; regenerate with this script, same bytes of csv).

What it looks like, so the strategies have something real to differ on: 40,000
requests over about 50 s in ms timestamps, 6,000 objects named like a key-value
store's (`user:1f3a:profile`), zipf 0.9 popularity with a handful of objects that
turn hot for a few seconds (a flash crowd), 88% get, 10% set, 2% delete, and
per-object sizes from a lognormal (median 2 KiB, a few objects near 200 KiB) that a
set may change. The request rate follows a slow wave with a burst at 20-25 s.

Usage: python bench/trace_demo.py [-o FILE]
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
import zstandard

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "scenarios" / "traces" / "trace-replay.csv.zst"
REQUESTS = 40_000
OBJECTS = 6_000


def _times(rng: np.random.Generator) -> np.ndarray:
    """Arrival times (s): Poisson at a rate of 800/s times a wave, x3 during 20-25 s."""
    t, out = 0.0, []
    while len(out) < REQUESTS:
        rate = 800.0 * (1.0 + 0.3 * np.sin(t / 8.0)) * (3.0 if 20.0 <= t < 25.0 else 1.0)
        t += rng.exponential(1.0 / rate)
        out.append(t)
    return np.array(out)


def _keys(rng: np.random.Generator, times: np.ndarray) -> np.ndarray:
    weights = 1.0 / np.arange(1, OBJECTS + 1) ** 0.9
    ids = rng.permutation(OBJECTS)[rng.choice(OBJECTS, size=REQUESTS, p=weights / weights.sum())]
    for start in (12.0, 31.0, 44.0):  # flash crowds: one cold object takes 30% for 3 s
        crowd = (times >= start) & (times < start + 3.0) & (rng.random(REQUESTS) < 0.3)
        ids[crowd] = rng.integers(OBJECTS // 2, OBJECTS)
    return ids


def demo_csv(seed: int = 14) -> str:
    """The trace as csv text: time (ms), key, op, size (bytes)."""
    rng = np.random.default_rng(seed)
    times = _times(rng)
    ids = _keys(rng, times)
    kinds = ("profile", "feed", "cart")
    labels = [f"user:{i // 3:04x}:{kinds[i % 3]}" for i in range(OBJECTS)]
    sizes = np.clip(rng.lognormal(np.log(2048), 1.0, OBJECTS), 64, 256 * 1024).astype(int)
    roll = rng.random(REQUESTS)
    ops = np.where(roll < 0.88, "get", np.where(roll < 0.98, "set", "delete"))
    out = io.StringIO()
    out.write("time,key,op,size\n")
    for t, k, op, grow in zip(
        (times * 1000).astype(int), ids, ops, rng.random(REQUESTS) < 0.05, strict=True
    ):
        if op == "set" and grow:  # a set that rewrites the object at another size
            sizes[k] = min(256 * 1024, max(64, int(sizes[k] * rng.uniform(0.5, 2.0))))
        size = 0 if op == "delete" else sizes[k]
        out.write(f"{t},{labels[k]},{op},{size}\n")
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=OUT)
    args = parser.parse_args()
    data = demo_csv().encode()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(zstandard.ZstdCompressor(level=19).compress(data))
    size = args.output.stat().st_size
    print(f"{args.output}: {REQUESTS} requests, {len(data):,} bytes of csv, {size:,} compressed")


if __name__ == "__main__":
    main()
