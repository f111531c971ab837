"""Whole runs on the simulator: determinism, paired streams, results on disk."""

from __future__ import annotations

from typing import Any

from lab.runner import run_cell
from lab.scenario import Cell
from lab.workload.stream import RequestStream
from tests.helpers import make_scenario, poisson

WALL_CLOCK = {"wall_time"}


def _scenario(**extra: Any) -> Any:
    base: dict[str, Any] = {
        "requests": 20_000,
        "warmup": "0.5s",
        "keyspace": {"keys": 5_000},
        "workload": poisson("4000/s", instances=3),
        "topology": {"nodes": 3, "capacity": "500 keys"},
        "strategies": {
            "invalidate": {"read": "cache-aside", "write": "invalidate", "ttl": "10s"},
            "around": {"read": "cache-aside", "write": "around", "ttl": "2s"},
            "update": {"read": "cache-aside", "write": "update", "ttl": "10s"},
        },
    }
    base.update(extra)
    return make_scenario(**base)


def _strip(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k not in WALL_CLOCK}


def test_same_seed_gives_an_identical_summary_and_timeseries() -> None:
    sc = _scenario()
    cell = Cell(sc.name, "invalidate", "sim", 7)
    a, b = run_cell(sc, cell), run_cell(sc, cell)
    assert _strip(a.summary) == _strip(b.summary)
    assert a.timeseries.equals(b.timeseries)
    assert a.summary["reads"] > 10_000 and a.summary["evictions"] > 0


def test_another_seed_gives_another_result() -> None:
    sc = _scenario()
    a = run_cell(sc, Cell(sc.name, "invalidate", "sim", 1))
    b = run_cell(sc, Cell(sc.name, "invalidate", "sim", 2))
    assert _strip(a.summary) != _strip(b.summary)


def test_every_strategy_sees_the_identical_request_stream() -> None:
    sc = _scenario()
    first = list(RequestStream(sc, 3).timed(4000.0))
    again = list(RequestStream(sc, 3).timed(4000.0))
    assert first == again and len(first) == 20_000
    results = [run_cell(sc, Cell(sc.name, name, "sim", 3)) for name in sc.strategies]
    # same reads and writes in the measured window, whatever the strategy did
    assert len({(r.summary["reads"], r.summary["writes"]) for r in results}) == 1
    # and every strategy's writes reached the origin exactly once each
    assert all(r.summary["origin_writes"] == r.summary["writes"] for r in results)


def test_write_paths_differ_the_way_they_should() -> None:
    sc = _scenario()
    by_name = {n: run_cell(sc, Cell(sc.name, n, "sim", 5)).summary for n in sc.strategies}
    # write-around serves old versions until the TTL: by far the stalest
    assert by_name["around"]["stale_read_ratio"] > 10 * max(
        by_name["invalidate"]["stale_read_ratio"], by_name["update"]["stale_read_ratio"], 1e-4
    )
    # update refills on write, invalidate forces a reload: update hits more
    assert by_name["update"]["hit_ratio"] > by_name["invalidate"]["hit_ratio"]
    for summary in by_name.values():
        assert summary["lost_writes"] == 0
        assert summary["errors"] == 0
        assert summary["read_latency_p50"] <= summary["read_latency_p99"]
        assert summary["read_latency_p99"] <= summary["read_latency_p999"]
        assert summary["read_latency_p999"] <= summary["read_latency_max"]


def test_closed_loop_with_think_time_and_duration() -> None:
    sc = _scenario(
        requests=None,
        duration="3s",
        workload={"arrivals": {"process": "closed", "clients": 20, "think": "5ms"}},
    )
    result = run_cell(sc, Cell(sc.name, "update", "sim", 1))
    s = result.summary
    # 20 clients, each ~5 ms think + ~1 ms service: about 3,300 requests/s for 2.5 s
    assert 5_000 < s["requests"] < 12_000
    assert s["measured_time"] == 2.5
    ts = result.timeseries
    assert list(ts["t"])[:3] == [0.0, 1.0, 2.0]
    assert ts["warmup"].tolist() == [True, False, False]  # intervals starting in the warm-up
    # the timeseries keeps warm-up requests, the summary does not
    assert int(ts["reads"].sum()) > s["reads"] > int(ts.loc[~ts["warmup"], "reads"].sum())


def test_summary_has_the_stable_keys() -> None:
    sc = _scenario()
    summary = run_cell(sc, Cell(sc.name, "around", "sim", 1)).summary
    stable = {
        "requests",
        "reads",
        "writes",
        "hit_ratio",
        "stale_read_ratio",
        "staleness_age_p50",
        "staleness_age_p99",
        "version_lag_max",
        "read_latency_p50",
        "read_latency_p99",
        "read_latency_p999",
        "write_latency_p50",
        "write_latency_p99",
        "write_latency_p999",
        "origin_reads",
        "origin_writes",
        "origin_reads_peak_per_s",
        "evictions",
        "lost_writes",
        "errors",
        "scenario",
        "strategy",
        "backend",
        "seed",
    }
    assert stable <= set(summary)


def test_stale_set_race_happens_and_the_ttl_bounds_its_window() -> None:
    from pathlib import Path

    from lab.scenario import load_scenario

    path = Path(__file__).resolve().parents[2] / "scenarios" / "stale-set-race.yaml"
    sc = load_scenario(path).scaled(0.5)
    long = run_cell(sc, Cell(sc.name, "invalidate-1h", "sim", 1)).summary
    short = run_cell(sc, Cell(sc.name, "invalidate-2s", "sim", 1)).summary
    # write-invalidate, yet stale reads: a slow reader put an old version back
    assert long["stale_reads"] > 5
    assert short["stale_reads"] > 0
    # a stale copy lives at most a TTL after the slow reader set it, and that reader
    # began its load before the newer version was acknowledged: age < TTL + one load
    # (origin service is lognormal with p99 150 ms: its maximum over a run stays < 2 s)
    assert short["staleness_age_max"] < 2.0 + 2.0
    assert long["staleness_age_max"] > short["staleness_age_max"]
    # leases close the race: the write revokes the slow reader's lease, its fill is refused
    leased = run_cell(sc, Cell(sc.name, "lease-1h", "sim", 1)).summary
    assert leased["stale_reads"] == 0
    assert leased["hit_ratio"] > short["hit_ratio"]


def test_ttl_jitter_spreads_expiries_and_flattens_the_origin_peak() -> None:
    sc = make_scenario(
        requests=None,
        duration="12s",
        warmup="2s",
        keyspace={"keys": 3000},
        workload={
            "mix": {"read": 1.0},
            "keys": {"distribution": "uniform"},
            "arrivals": {"process": "poisson", "rate": "6000/s"},
        },
        strategies={
            "fixed": {"ttl": "3s"},
            "jittered": {"ttl": "3s", "ttl_jitter": 0.5},
        },
    )
    fixed = run_cell(sc, Cell(sc.name, "fixed", "sim", 1)).summary
    jittered = run_cell(sc, Cell(sc.name, "jittered", "sim", 1)).summary
    # every key was filled in the first second, so without jitter they all expire together
    assert jittered["origin_reads_peak_per_s"] < 0.7 * fixed["origin_reads_peak_per_s"]


def test_staleness_curve_and_distributions_agree_with_the_summary() -> None:
    sc = _scenario()
    result = run_cell(sc, Cell(sc.name, "around", "sim", 1))
    s, curve, dists = result.summary, result.staleness_curve, result.distributions
    assert curve is not None and dists is not None
    # every stale read is of a written key, so all of them are in the curve
    assert int(curve["stale_reads"].sum()) == s["stale_reads"]
    assert int(curve["reads"].sum()) <= s["reads"]
    # write-around: right after a write nearly every read is stale; long after, fresh again
    early = curve[curve["since_hi"] <= 0.1]
    late = curve[curve["since_lo"] >= 2.0]
    p_early = 1 - early["stale_reads"].sum() / early["reads"].sum()
    p_late = 1 - late["stale_reads"].sum() / late["reads"].sum()
    assert p_early < 0.2 < 0.8 < p_late
    by_metric = dists.groupby("metric")["count"].sum()
    assert by_metric["read_latency"] == s["reads"]
    assert by_metric["write_latency"] == s["writes"]
    assert by_metric["staleness_age"] == s["stale_reads"]
