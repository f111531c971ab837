"""The simulator's memcached (`eviction: memcached-slru`, lab/slabs.py) against real
memcached at the same memory: hit ratios within 1 point, fixed and mixed value sizes.

Twice: the same key stream replayed straight into a server and into the model
(`lab.memcached.replay`), and a whole lab run of one scenario on the `sim` and
`memcached` backends. Skipped with the reason where no memcached binary exists.
"""

from __future__ import annotations

from typing import Any

import pytest

from lab.backends import create
from lab.memcached.binaries import INSTALL_HINT, memcached_available
from lab.memcached.replay import replay_model, replay_real, stream
from lab.memcached.server import Options, start_memcached
from lab.runner import run_cell
from lab.scenario import Cell
from tests.helpers import FAST_ORIGIN, make_scenario

BINARY = memcached_available()
pytestmark = pytest.mark.skipif(BINARY is None, reason=INSTALL_HINT)


@pytest.mark.parametrize(
    ("sizes", "memory_mib", "factor"),
    [((1000,), 4, 1.25), ((100, 1000, 4000), 4, 1.25), ((300, 3000), 8, 2.0)],
    ids=["fixed-1000B", "mixed-100B-4KB", "mixed-f2"],
)
def test_replayed_stream_hit_ratio_within_a_point(
    sizes: tuple[int, ...], memory_mib: int, factor: float
) -> None:
    ids, per_key = stream(30000, 100_000, 7, sizes=sizes)
    options = Options(memory_mib=memory_mib, threads=2, growth_factor=factor)
    with start_memcached(options, binary=BINARY) as server:
        real = replay_real(server.address, ids, per_key, warmup=0.5)
    model = replay_model(
        ids, per_key, real.times, 0.5, memory=memory_mib << 20, growth_factor=factor
    )
    assert real.evictions > 1000  # memory is the limit here
    assert abs(model.hit_ratio - real.hit_ratio) <= 0.01, (model, real)
    assert abs(model.items - real.items) <= 0.01 * real.items


@pytest.mark.parametrize(
    "value_size",
    [2000, {"distribution": "uniform", "low": 800, "high": 1600}],
    ids=["fixed-2000B", "mixed-800-1600B"],
)
def test_a_lab_run_hits_as_often_on_the_simulator_as_on_memcached(value_size: Any) -> None:
    scenario = make_scenario(
        requests=16000,
        origin=FAST_ORIGIN,
        keyspace={"keys": 20000, "value_size": value_size},
        topology={"nodes": 2, "eviction": "memcached-slru", "memcached": {"memory": "2MiB"}},
        workload={
            "arrivals": {"process": "poisson", "rate": 2000},
            "mix": {"read": 1.0},
            "keys": {"distribution": "zipf", "s": 0.9},
        },
        backends=["sim", "memcached"],
        warmup=3,
    )
    sim = run_cell(scenario, Cell("t", "cache-aside", "sim", 1)).summary
    patient = create("memcached", client_timeout=10.0)  # a busy machine may stall a second
    real = run_cell(scenario, Cell("t", "cache-aside", "memcached", 1), backend=patient).summary
    assert real["errors"] == 0
    assert real["evictions"] > 500 and sim["evictions"] > 500
    assert abs(sim["hit_ratio"] - real["hit_ratio"]) <= 0.01, (sim["hit_ratio"], real["hit_ratio"])
    assert abs(sim["cache_keys"] - real["cache_keys"]) <= 0.01 * real["cache_keys"]
    assert abs(sim["cache_memory"] - real["cache_memory"]) <= 0.01 * real["cache_memory"]
