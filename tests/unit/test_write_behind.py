"""Write-behind: fast acknowledgements, coalesced flushes, no staleness while cached."""

from __future__ import annotations

from typing import Any

from lab.runner import run_cell
from lab.scenario import Cell
from tests.helpers import make_scenario


def _run(capacity: int | None, flush: dict[str, Any], fill: str = "add") -> dict[str, Any]:
    sc = make_scenario(
        requests=None,
        duration="6s",
        warmup="1s",
        keyspace={"keys": 2000},
        workload={
            "mix": {"write": 0.3},
            "keys": {"distribution": "zipf", "s": 1.1},
            "arrivals": {"process": "poisson", "rate": "2000/s"},
            "instances": 3,
        },
        topology={"nodes": 2, "capacity": capacity},
        strategies={
            "behind": {
                "read": "cache-aside",
                "write": "behind",
                "ttl": "1h",
                "flush": flush,
                "fill": fill,
            },
            "update": {"read": "cache-aside", "write": "update", "ttl": "1h"},
        },
    )
    return {n: run_cell(sc, Cell(sc.name, n, "sim", 2)).summary for n in sc.strategies}


def test_while_the_cache_holds_every_key_no_read_is_stale_and_nothing_is_lost() -> None:
    # fill: add, so a reader's fill never overwrites a newer write the cache took meanwhile
    results = _run(None, {"interval": "500ms", "batch": 1000})
    behind, update = results["behind"], results["update"]
    assert behind["stale_reads"] == 0
    assert behind["lost_writes"] == 0
    # acknowledged by the cache: a round trip, far below an origin commit
    assert behind["write_latency_p99"] < 0.01 < update["write_latency_p99"]
    # hot keys written several times between flushes reach the origin once
    assert behind["coalesced_writes"] > 0
    assert behind["origin_writes"] + behind["coalesced_writes"] >= behind["writes"]
    assert behind["origin_writes"] < update["origin_writes"]
    # an acknowledged write waits for the next flush: up to the interval plus the commit
    assert 0.1 < behind["flush_lag_p99"] < 0.5 + 0.5


def test_a_full_batch_flushes_before_the_interval() -> None:
    slow = _run(None, {"interval": "2s", "batch": 10_000})["behind"]
    eager = _run(None, {"interval": "2s", "batch": 20})["behind"]
    assert eager["flush_lag_p50"] < slow["flush_lag_p50"] / 4
    assert eager["write_backlog_max"] < slow["write_backlog_max"] / 4


def test_a_plain_set_fill_can_overwrite_an_unflushed_write() -> None:
    """The stale-set race, write-behind edition: a reader that loaded the old version
    from the origin sets it over the newer write the cache had just accepted, so reads
    go stale (and if that write was still unflushed, the flusher, which reads dirty
    values back from the cache, drops it)."""
    behind = _run(None, {"interval": "500ms", "batch": 1000}, fill="set")["behind"]
    assert behind["stale_reads"] > 0
