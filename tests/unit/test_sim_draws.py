"""The simulator's own random draws (`SimBackend(draw=k)`) and the fidelity grid's mean
over them (`simulate`): a draw re-draws what a real run of the seed does not share and
keeps what it does (the request stream, the origin's latencies)."""

from __future__ import annotations

import math

from lab.fidelity.grid import FidelityCell, Row, draw_sd, pool, scenario_for, simulate
from lab.runner import run_cell
from lab.sampling import rng_for
from lab.scenario import Cell
from lab.sim.backend import SimBackend

CELL = FidelityCell("100B", 1, 1, 0.9)
SCENARIO = scenario_for(CELL, duration=3.0)


def test_draw_zero_is_the_seeds_own_stream_and_others_are_new_and_fixed() -> None:
    seed_own = rng_for(4, "network.rtt").random(5).tolist()
    assert rng_for(4, "network.rtt", 0).random(5).tolist() == seed_own
    other = rng_for(4, "network.rtt", 2).random(5).tolist()
    assert other != seed_own and other == rng_for(4, "network.rtt", 2).random(5).tolist()


def _draws(draw: int) -> tuple[list[float], list[float], list[float]]:
    backend = SimBackend(draw=draw)
    backend._parts(SCENARIO, Cell(SCENARIO.name, "cache-aside", "sim", 3))
    origin, cluster = backend.origin, backend.cluster
    assert origin is not None and cluster is not None
    return (
        [origin._read_latency() for _ in range(5)] + [origin._rtt() for _ in range(5)],
        [origin._write_latency() for _ in range(5)],
        [cluster._rtt() for _ in range(5)],
    )


def test_a_draw_keeps_the_origins_latencies_and_redraws_the_network() -> None:
    reads, writes, network = _draws(0)
    reads_2, writes_2, network_2 = _draws(2)
    assert (reads_2, writes_2) == (reads, writes)  # as the real run of seed 3 draws them
    assert network_2 != network


def test_a_draw_is_deterministic_and_keeps_the_request_stream() -> None:
    cell = Cell(SCENARIO.name, "cache-aside", "sim", 1)

    def summary(backend: SimBackend | None = None) -> dict[str, object]:
        out = run_cell(SCENARIO, cell, backend=backend).summary
        del out["wall_time"]  # the one thing a simulated run does not fix
        return out

    first, seed_own = summary(SimBackend(draw=3)), summary()
    assert first == summary(SimBackend(draw=3))
    assert summary(SimBackend(draw=0)) == seed_own
    for name in ("reads", "writes", "requests"):
        assert first[name] == seed_own[name], name
    assert first["read_latency_p50"] != seed_own["read_latency_p50"]  # other network times


def test_simulate_pools_the_draws_and_keeps_each_ones_counts() -> None:
    one = simulate(SCENARIO, 1)
    three = simulate(SCENARIO, 1, draws=3)
    assert three["reads"] == 3 * one["reads"]
    assert three["draw_stale_reads"][0] == one["stale_reads"]
    assert sum(three["draw_stale_reads"]) == three["stale_reads"]
    assert math.isclose(three["stale_read_ratio"], three["stale_reads"] / three["reads"])
    sd = draw_sd(three)
    assert sd is not None and sd >= 0.0
    assert draw_sd(one) is None  # one draw: no spread to give
    other = simulate(SCENARIO, 2, draws=3)
    seeds = pool([three, other])  # as `run_pairs` pools the seeds: draw by draw
    for name in ("draw_reads", "draw_stale_reads"):
        assert seeds[name] == [a + b for a, b in zip(three[name], other[name], strict=True)]
    assert sum(seeds["draw_reads"]) == seeds["reads"]


def test_a_rows_record_gives_the_draws_and_their_spread() -> None:
    sim = simulate(SCENARIO, 1, draws=3)
    record = Row(CELL, "redis-test", sim, sim, sim_draws=3).record()
    assert record["sim_draws"] == 3 and record["stale_sim_draw_sd"] == draw_sd(sim)
    assert "sim_draws" not in Row(CELL, "redis-test", sim, sim).record()
