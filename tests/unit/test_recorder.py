"""lab.metrics.recorder: intervals closed as they finish, gauges binned by interval."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from lab.metrics.oracle import Oracle
from lab.metrics.recorder import Recorder
from lab.runner import run_cell
from tests.helpers import make_scenario


def feed(recorder: Recorder, reads: list[tuple[float, float]], settle_every: float) -> None:
    """Record reads (intended start, latency) in completion order, settling the recorder at
    every `settle_every` boundary with the earliest start still running, as the client
    loop's ticker does."""
    done = sorted(reads, key=lambda r: r[0] + r[1])
    next_tick = settle_every
    for i, (start, latency) in enumerate(done):
        end = start + latency
        while next_tick <= end:
            running = [s for s, lat in done[i:] if s <= next_tick]
            recorder.settle(min(running, default=next_tick))
            next_tick += settle_every
        recorder.read(start, start, end, latency < 0.002, 7, 0)


def reads_over(seconds: int, seed: int = 1) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    return [
        (rng.uniform(0, seconds), rng.lognormvariate(math.log(0.001), 1.5))
        for _ in range(40 * seconds)
    ]


def test_settled_intervals_report_the_same_p99_and_summary_as_unsettled_ones() -> None:
    reads = reads_over(30)
    kept, settled = (Recorder(Oracle(), interval=1.0, warmup=2.0) for _ in range(2))
    feed(kept, reads, settle_every=math.inf)
    feed(settled, reads, settle_every=1.0)
    a, b = kept.timeseries(), settled.timeseries()
    assert kept.open_intervals == 30  # every interval's histogram kept to the end
    assert settled.open_intervals <= 2  # only the last ones: the rest are a p99 each
    assert a["read_p99"].notna().all()
    assert np.array_equal(a["read_p99"].to_numpy(), b["read_p99"].to_numpy())
    assert kept.summary() == settled.summary()  # byte-identical, sums included


def test_a_read_recorded_into_a_settled_interval_is_a_bug_that_fails_loudly() -> None:
    recorder = Recorder(Oracle(), interval=1.0, warmup=0.0)
    recorder.read(0.5, 0.5, 0.6, True, 1, 0)
    recorder.settle(2.0)
    recorder.read(1.5, 1.5, 2.1, True, 1, 0)
    with pytest.raises(RuntimeError, match="interval 1 after it was settled"):
        recorder.timeseries()


def test_gauges_at_jittered_times_fill_every_row() -> None:
    """A real clock samples at 1.0003 s, not 1.0: each sample goes to the interval whose
    end is nearest; a missed tick carries the level forward; the final sample fills the
    last, partial interval."""
    recorder = Recorder(Oracle(), interval=1.0, warmup=0.0)
    for t in np.arange(0.05, 5.4, 0.1):
        recorder.read(float(t), float(t), float(t) + 0.001, True, 1, 0)
    samples = {1.0003: (10, 100), 2.0004: (25, 120), 2.9996: (40, 130), 5.0002: (70, 90)}
    for t, (evictions, keys) in samples.items():
        recorder.gauge(t, evictions=evictions, cache_keys=keys, cache_memory=keys * 1024)
    recorder.gauge_final(5.4, evictions=75, cache_keys=95, cache_memory=95 * 1024)
    frame = recorder.timeseries()
    assert len(frame) == 6
    gauges = ["evictions_delta", "cache_keys", "cache_memory"]
    assert frame[gauges].notna().all().all()
    assert frame["cache_keys"].tolist() == [100, 120, 130, 130, 90, 95]  # t=4 missed: carried
    assert frame["evictions_delta"].tolist() == [10, 15, 15, 0, 30, 5]
    assert frame["evictions_delta"].sum() == 75
    assert frame["cache_memory"].tolist() == [k * 1024 for k in frame["cache_keys"]]


def test_a_simulated_run_closes_its_intervals_as_it_goes() -> None:
    scenario = make_scenario(
        requests=30_000,
        workload={"arrivals": {"process": "poisson", "rate": 2000}},
    )
    result = run_cell(scenario, scenario.cells()[0])
    frame = result.timeseries
    assert len(frame) >= 14
    assert frame["read_p99"].notna().all()
    assert frame[["cache_keys", "evictions_delta"]].notna().all().all()
