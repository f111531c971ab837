"""Stampede guards and refresh-ahead do what they promise, on the hot-key scenario."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lab.runner import run_cell
from lab.scenario import Cell, load_scenario

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "hot-key-expiry.yaml"


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, Any]]:
    sc = load_scenario(SCENARIO).scaled(0.4)  # 8 s, 2,000 reads/s, the hot key expires ~7 times
    return {name: run_cell(sc, Cell(sc.name, name, "sim", 1)).summary for name in sc.strategies}


def test_without_a_guard_every_waiting_reader_goes_to_the_origin(
    results: dict[str, dict[str, Any]],
) -> None:
    # ~1,800 hot reads/s and a ~50 ms reload: dozens of concurrent loads of one key
    assert results["no-guard"]["origin_same_key_max"] >= 20


def test_a_lock_allows_one_load_at_a_time(results: dict[str, dict[str, Any]]) -> None:
    lock, none = results["lock"], results["no-guard"]
    assert lock["origin_same_key_max"] == 1
    assert lock["origin_reads"] < none["origin_reads"] / 3
    # the waiters read the copy the one load put back: they count as hits
    assert lock["hit_ratio"] > none["hit_ratio"]


def test_a_lock_without_the_recheck_reloads_more(results: dict[str, dict[str, Any]]) -> None:
    assert results["lock-no-recheck"]["origin_reads"] > 3 * results["lock"]["origin_reads"]


def test_coalescing_loads_once_per_instance(results: dict[str, dict[str, Any]]) -> None:
    coalesce = results["coalesce"]
    assert coalesce["origin_same_key_max"] <= 4  # four app instances
    assert coalesce["origin_reads"] < results["no-guard"]["origin_reads"] / 2


def test_xfetch_refreshes_early_so_fewer_readers_wait(results: dict[str, dict[str, Any]]) -> None:
    xfetch, none = results["xfetch"], results["no-guard"]
    assert xfetch["hit_ratio"] > none["hit_ratio"]
    assert xfetch["origin_same_key_max"] < none["origin_same_key_max"]
    assert xfetch["read_latency_p99"] < none["read_latency_p99"]


def test_refresh_ahead_keeps_the_hot_key_from_missing(results: dict[str, dict[str, Any]]) -> None:
    refresh = results["refresh-ahead"]
    assert refresh["hit_ratio"] > 0.999
    assert refresh["read_latency_p99"] < 0.01  # no reader waits for the origin


def test_xfetch_and_refresh_ahead_need_a_ttl() -> None:
    from lab.scenario import ScenarioError, parse_scenario

    base: dict[str, Any] = {"name": "x", "requests": 10}
    with pytest.raises(ScenarioError, match=r"xfetch .* needs a ttl"):
        parse_scenario({**base, "strategies": {"s": {"stampede": {"xfetch": {}}}}})
    with pytest.raises(ScenarioError, match=r"refresh-ahead .* needs a ttl"):
        parse_scenario({**base, "strategies": {"s": {"read": "refresh-ahead"}}})
    with pytest.raises(ScenarioError, match="exactly one guard"):
        parse_scenario(
            {**base, "strategies": {"s": {"ttl": 1, "stampede": {"lock": {}, "coalesce": {}}}}}
        )


def test_a_lease_admits_one_load_and_stale_mode_answers_at_once(
    results: dict[str, dict[str, Any]],
) -> None:
    lease, stale = results["lease"], results["lease-stale"]
    assert lease["origin_same_key_max"] == stale["origin_same_key_max"] == 1
    assert lease["origin_reads"] < results["no-guard"]["origin_reads"] / 3
    # with stale: true nobody waits for the load: the tail is a cache round trip
    assert stale["read_latency_p99"] < lease["read_latency_p99"] / 5


def test_refresh_ahead_also_refreshes_entries_a_write_put_in_the_cache() -> None:
    """Write-update and write-through set entries with their expiry, so refresh-ahead
    keeps refreshing a hot key after it was written instead of letting it stampede."""
    sc = load_scenario(SCENARIO).scaled(0.4)
    sc = sc.model_copy(
        update={
            "workload": sc.workload.model_copy(
                update={"mix": sc.workload.mix.model_copy(update={"read": 0.999, "write": 0.001})}
            ),
            "strategies": {
                "update": sc.strategies["refresh-ahead"].model_copy(update={"write": "update"}),
                "through": sc.strategies["refresh-ahead"].model_copy(update={"write": "through"}),
            },
        }
    )
    for name in ("update", "through"):
        summary = run_cell(sc, Cell(sc.name, name, "sim", 1)).summary
        assert summary["writes"] > 5
        assert summary["origin_same_key_max"] <= 4, name  # one refresh per instance at most


@pytest.mark.parametrize("release", ["unconditional", "token"])
def test_a_slow_holder_releases_the_next_holders_lock_only_without_a_token(
    release: str,
) -> None:
    """A's load (100 ms) outlives its lock (80 ms expiry); B takes the lock at ~81 ms.
    When A finishes at 100 ms, the article's unconditional DEL frees B's lock (a third
    reader could load too); with `release: token` A's compare-and-delete leaves it."""
    from lab.core import Versioned
    from lab.patterns import Wiring
    from lab.patterns.stampede import LockedCacheAside
    from lab.scenario import StrategySpec
    from tests.helpers import zero_network_sim

    rt, cache, origin = zero_network_sim(read_latency=0.1)
    spec = StrategySpec.model_validate(
        {
            "read": "cache-aside",
            "write": "invalidate",
            "ttl": 60,
            "stampede": {
                "lock": {"expiry": 0.08, "poll": 0.01, "recheck": False, "release": release}
            },
        }
    )
    a, b = (LockedCacheAside(Wiring(cache, origin, rt, seed), spec) for seed in (1, 2))
    lock_at_110ms: list[Versioned | None] = []

    async def main() -> None:
        async def reader(part: LockedCacheAside, after: float) -> None:
            await rt.sleep(after)
            await part.read(7)

        rt.spawn(reader(a, 0.0))
        rt.spawn(reader(b, 0.001))
        await rt.sleep(0.11)
        lock_at_110ms.append(await cache.get("lock:key:7"))
        await rt.sleep(0.2)

    rt.run(main())
    if release == "token":
        assert lock_at_110ms[0] is not None  # B still holds its lock
    else:
        assert lock_at_110ms[0] is None  # A's DEL released B's lock
