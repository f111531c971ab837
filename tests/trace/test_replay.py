"""`workload.trace`: a trace file replayed as a scenario's request stream, on the
simulator (every strategy) and on real servers; cuts, speed, warm-up counts,
bounded memory, and one-line errors naming the field."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lab.cli import main
from lab.runner import run_cell
from lab.scenario import Cell, Scenario, ScenarioError, parse_scenario
from lab.workload.stream import RequestStream, prepared
from lab.workload.values import value_sizes
from tests.trace.refs import write_csv, write_oracle, zipf_keys

STRATEGIES: dict[str, dict[str, Any]] = {
    "aside": {"read": "cache-aside", "write": "invalidate", "ttl": 60},
    "update": {"read": "cache-aside", "write": "update", "ttl": 60},
    "through": {"read": "read-through", "write": "through", "ttl": 60},
    "behind": {"read": "read-through", "write": "behind", "ttl": 60},
    "refresh": {
        "read": "refresh-ahead",
        "write": "invalidate",
        "ttl": 2,
        "refresh": {"window": 0.3},
    },
    "around": {"read": "cache-aside", "write": "around", "ttl": 60},
    "versioned": {"read": "versioned", "write": "bump", "ttl": 60, "namespace": 10},
    "lease": {"read": "cache-aside", "write": "invalidate", "ttl": 60, "stampede": {"lease": {}}},
    "xfetch": {"read": "cache-aside", "write": "invalidate", "ttl": 2, "stampede": {"xfetch": {}}},
    "lock": {"read": "cache-aside", "write": "invalidate", "ttl": 2, "stampede": {"lock": {}}},
    "near": {
        "read": "cache-aside",
        "write": "invalidate",
        "ttl": 60,
        "near": {"capacity": 50, "ttl": 1, "invalidate": "bus"},
    },
}


def csv_trace(
    path: Path,
    n: int = 4000,
    keys: int = 300,
    rate: float = 2000.0,
    seed: int = 1,
    size: int = 200,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A csv trace with text keys, gets and sets, increasing float times from 100 s."""
    rng = np.random.default_rng(seed)
    ids = zipf_keys(rng, keys, 0.9, n)
    times = 100.0 + np.cumsum(rng.exponential(1 / rate, n))
    writes = rng.random(n) < 0.1
    rows = [
        (repr(float(t)), f"user:{k}", "set" if w else "get", size)
        for t, k, w in zip(times, ids, writes, strict=True)
    ]
    write_csv(path, ["time", "key", "op", "size"], rows)
    return times, ids, writes


def scenario(folder: Path, trace: dict[str, Any], **top: Any) -> Scenario:
    data: dict[str, Any] = {
        "name": "replay",
        "requests": 4000,
        "workload": {"trace": trace},
        "topology": {"capacity": 100},
        "strategies": {"aside": STRATEGIES["aside"]},
    }
    data.update(top)
    return parse_scenario(data, "test", folder)


def run(sc: Scenario, strategy: str = "aside", backend: str = "sim") -> dict[str, Any]:
    return run_cell(sc, Cell(sc.name, strategy, backend, 1)).summary


def test_timed_replay_takes_the_traces_requests_and_times(tmp_path: Path) -> None:
    times, _, writes = csv_trace(tmp_path / "t.csv")
    sc = scenario(tmp_path, {"path": "t.csv", "speed": "4x"})
    stream = list(RequestStream(sc, 1).arrivals())
    assert [t for t, _, _ in stream] == pytest.approx(((times - times[0]) / 4).tolist())
    assert [w for _, w, _ in stream] == writes.tolist()
    s = run(sc)
    assert s["requests"] == 4000 and s["writes"] == int(writes.sum())
    span = (times[-1] - times[0]) / 4
    assert span <= s["simulated_time"] < span + 1.0  # the last request and its drain
    assert 0 < s["hit_ratio"] < 1


def test_speed_scales_time_and_throughput(tmp_path: Path) -> None:
    csv_trace(tmp_path / "t.csv", rate=200.0)  # 2,000/s at 10x: no overload
    slow = run(scenario(tmp_path, {"path": "t.csv", "speed": "1x"}))
    fast = run(scenario(tmp_path, {"path": "t.csv", "speed": "10x"}))
    assert slow["requests"] == fast["requests"] == 4000
    assert fast["throughput"] == pytest.approx(10 * slow["throughput"], rel=0.05)


def test_dense_keys_are_the_distinct_trace_keys(tmp_path: Path) -> None:
    _, ids, _ = csv_trace(tmp_path / "t.csv")
    sc = scenario(tmp_path, {"path": "t.csv"})
    keys = [k for _, _, k in RequestStream(sc, 1).arrivals()]
    first_seen = {k: i for i, k in reversed(list(enumerate(dict.fromkeys(ids.tolist()))))}
    assert keys == [first_seen[k] for k in ids.tolist()]  # 0, 1, 2 by first appearance


def test_order_only_under_poisson_and_closed_arrivals(tmp_path: Path) -> None:
    _, _, writes = csv_trace(tmp_path / "t.csv")
    trace = {"path": "t.csv", "speed": "order-only"}
    poisson = scenario(tmp_path, trace, workload={"trace": trace, "arrivals": {"rate": 500}})
    s = run(poisson)
    assert s["requests"] == 4000 and s["writes"] == int(writes.sum())
    assert s["throughput"] == pytest.approx(500, rel=0.1)  # the scenario's rate, not the trace's
    closed = {"process": "closed", "clients": 4}
    s = run(scenario(tmp_path, trace, workload={"trace": trace, "arrivals": closed}))
    assert s["requests"] == 4000 and s["writes"] == int(writes.sum())


def test_requests_and_duration_cut_the_trace(tmp_path: Path) -> None:
    times, _, _ = csv_trace(tmp_path / "t.csv")
    assert run(scenario(tmp_path, {"path": "t.csv"}, requests=1500))["requests"] == 1500
    cut = scenario(tmp_path, {"path": "t.csv"}, requests=None, duration=1.0)
    expected = int(((times - times[0]) < 1.0).sum())
    assert run(cut)["requests"] == expected
    many = scenario(tmp_path, {"path": "t.csv"}, requests=10**6)  # more than the trace holds
    assert run(many)["requests"] == 4000


def test_a_warmup_request_count(tmp_path: Path) -> None:
    csv_trace(tmp_path / "t.csv")
    sc = scenario(tmp_path, {"path": "t.csv", "speed": "2x"}, warmup="1000 requests")
    assert sc.warmup_requests == 1000 and sc.warmup == 0
    assert run(sc)["requests"] == 3000
    poisson = parse_scenario(
        {
            "name": "p",
            "requests": 3000,
            "warmup": "500 requests",
            "workload": {"arrivals": {"rate": 1000}},
            "strategies": {"aside": STRATEGIES["aside"]},
        }
    )
    assert run(poisson)["requests"] == 2500


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_strategy_replays_deterministically(tmp_path: Path, strategy: str) -> None:
    csv_trace(tmp_path / "t.csv", n=2000)
    sc = scenario(tmp_path, {"path": "t.csv", "speed": "2x"}, requests=2000, strategies=STRATEGIES)
    first, again = run(sc, strategy), run(sc, strategy)
    assert first["requests"] == 2000 and first["errors"] == 0
    for key in ("hits", "stale_reads", "origin_reads", "read_latency_p99", "evictions"):
        assert first[key] == again[key]


def test_oracle_general_and_txt(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    ids = zipf_keys(rng, 200, 1.0, 3000)
    write_oracle(tmp_path / "t.bin.zst", np.arange(3000) // 300, ids, [100] * 3000)
    s = run(scenario(tmp_path, {"path": "t.bin.zst", "speed": "5x"}, requests=3000))
    assert s["requests"] == s["reads"] == 3000
    assert 1.6 < s["simulated_time"] < 3.0  # 9 whole seconds of trace at 5x, and a drain
    (tmp_path / "t.txt").write_text("".join(f"k{i}\n" for i in ids))
    txt = scenario(tmp_path, {"path": "t.txt"}, workload={"trace": {"path": "t.txt"}})
    assert txt.workload.trace is not None and txt.workload.trace.speed == "order-only"
    assert run(txt)["requests"] == 3000


def test_trace_sizes_become_value_sizes(tmp_path: Path) -> None:
    rows = [
        (0.0, "a", "get", 100),
        (0.1, "b", "get", 5000),
        (0.2, "a", "set", 300),  # a set rewrites a at another size: its last counts
        (0.3, "c", "delete", 0),  # size 0 says nothing: c has the keyspace's size
        (0.4, "b", "get", 5000),
    ]
    write_csv(tmp_path / "t.csv", ["time", "key", "op", "size"], rows)
    sc = scenario(tmp_path, {"path": "t.csv"}, requests=5, keyspace={"value_size": 777})
    sizes = value_sizes(prepared(sc, 1).keyspace, 1)
    assert [sizes(k) for k in (0, 1, 2)] == [300, 5000, 777]
    assert sizes.array(np.array([2, 1, 0])).tolist() == [777, 5000, 300]
    same = [(i / 10, f"k{i % 3}", "get", 640) for i in range(9)]
    write_csv(tmp_path / "same.csv", ["time", "key", "op", "size"], same)
    one_size = scenario(tmp_path, {"path": "same.csv"}, requests=9)
    assert prepared(one_size, 1).keyspace.value_size == 640  # a plain size: the fast path
    (tmp_path / "t.txt").write_text("a\nb\n")
    txt = scenario(tmp_path, {"path": "t.txt"}, requests=2, keyspace={"value_size": 99})
    assert prepared(txt, 1).keyspace.value_size == 99  # no sizes in the trace


def test_trace_sizes_count_against_a_byte_budget(tmp_path: Path) -> None:
    """The same trace with every object 8x larger hits less in the same bytes."""
    rng = np.random.default_rng(2)
    ids = zipf_keys(rng, 500, 0.9, 6000)
    sizes = rng.integers(200, 4000, 500)
    ratios = []
    for factor in (1, 8):
        name = f"x{factor}.bin"
        write_oracle(tmp_path / name, np.arange(6000) // 3000, ids, sizes[ids] * factor)
        sc = scenario(tmp_path, {"path": name}, requests=6000, topology={"capacity": "256KiB"})
        s = run(sc)
        assert s["evictions"] > 0 and s["cache_memory"] <= 256 * 1024
        ratios.append(s["hit_ratio"])
    assert ratios[1] < ratios[0] - 0.1, ratios


def _peak_replay(folder: Path, chunks: int, chunk: int, monkeypatch: Any) -> int:
    import lab.workload.stream as stream_module

    monkeypatch.setattr(stream_module, "TRACE_CHUNK", chunk)
    n = chunks * chunk
    rng = np.random.default_rng(5)
    name = f"m{chunks}.bin"
    # two requests a trace second at 2000x: 4,000/s, under what the origin takes
    write_oracle(folder / name, np.arange(n) // 2, zipf_keys(rng, 300, 0.9, n), [64] * n)
    sc = scenario(folder, {"path": name, "speed": "2000x"}, requests=n)
    stream_module._SCANNED.clear()
    tracemalloc.start()
    try:
        assert run(sc)["requests"] == n
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_replay_memory_is_bounded_by_the_chunk(tmp_path: Path, monkeypatch: Any) -> None:
    """A trace of 40 chunks peaks where one of 10 does (memory does not grow with the
    trace's length), and far below what holding the 40-chunk trace would take."""
    chunk = 4096
    ten = _peak_replay(tmp_path, 10, chunk, monkeypatch)
    forty = _peak_replay(tmp_path, 40, chunk, monkeypatch)
    held_as_python = 40 * chunk * 3 * 36  # (time, is_write, key) as Python objects, lower bound
    assert forty < 1.15 * ten, (ten, forty)
    assert forty - ten < held_as_python / 10


def test_validation_names_the_field_in_one_line(tmp_path: Path) -> None:
    csv_trace(tmp_path / "t.csv", n=50)
    write_oracle(tmp_path / "t.bin", [0, 1], [5, 6], [10, 10])
    cases: list[tuple[dict[str, Any], dict[str, Any], str]] = [
        ({"path": "nope.csv"}, {}, "workload.trace: path: "),
        ({"path": "t.csv", "format": "tsv"}, {}, "workload.trace.format: must be one of"),
        ({"path": "t.csv", "columns": {"key": "id"}}, {}, "no column named 'id' (for key)"),
        ({"path": "t.csv", "format": "oracleGeneral"}, {}, "looks like text, not 24-byte"),
        ({"path": "t.bin", "format": "csv"}, {}, "looks binary, not csv text"),
        ({"path": "t.csv", "speed": "fast"}, {}, "speed: expected a factor such as 10x"),
        ({"path": "t.csv"}, {"mix": {"read": 0.5}}, "workload.mix: does not apply"),
        ({"path": "t.csv"}, {"arrivals": {"rate": 10}}, "workload.arrivals: the trace's times"),
        (
            {"path": "t.csv", "speed": "order-only"},
            {"arrivals": {"process": "closed", "clients": 2}},
            "warmup: a request count needs open-loop arrivals",
        ),
    ]
    for trace, workload, expected in cases:
        top: dict[str, Any] = {"warmup": "10 requests"} if "warmup" in expected else {}
        with pytest.raises(ScenarioError) as caught:
            scenario(tmp_path, trace, workload={"trace": trace, **workload}, **top)
        message = str(caught.value)
        assert expected in message and "\n" not in message, message


def test_a_bad_line_stops_run_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [(f"{i}.0", f"k{i % 7}", "get", 10) for i in range(20)]
    rows[11] = ("11.0", "k4", "scan", 10)
    write_csv(tmp_path / "t.csv", ["time", "key", "op", "size"], rows)
    (tmp_path / "s.yaml").write_text(
        "name: bad\nrequests: 20\nworkload: {trace: {path: t.csv}}\n"
        "strategies: {aside: {read: cache-aside, write: invalidate, ttl: 60}}\n"
    )
    results = tmp_path / "results"
    assert main(["run", str(tmp_path / "s.yaml"), "--results", str(results)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "workload.trace" in err and "line 13: unknown operation 'scan'" in err, err
    assert not results.exists() or not any(results.iterdir())
    assert main(["validate", str(tmp_path / "s.yaml")]) == 2
    rows[11] = ("9.0", "k4", "get", 10)  # time goes backwards
    write_csv(tmp_path / "t.csv", ["time", "key", "op", "size"], rows)
    assert main(["validate", str(tmp_path / "s.yaml")]) == 2
    assert "line 13: time 9 is before the previous request's 10" in capsys.readouterr().err


def test_real_backend_replays_a_small_trace(tmp_path: Path) -> None:
    from lab.processes import live_servers
    from lab.redis.backend import RedisBackend
    from tests.helpers import FAST_ORIGIN, default_binary

    binary = default_binary()
    # gentle on a busy machine: 500 requests/s for 2 s (errors would leave out requests)
    _, _, writes = csv_trace(tmp_path / "t.csv", n=1000, rate=500.0, size=8 * 1024)
    sc = scenario(
        tmp_path,
        {"path": "t.csv", "speed": "1x"},
        requests=1000,
        origin=FAST_ORIGIN,
        strategies={"aside": STRATEGIES["aside"], "through": STRATEGIES["through"]},
    )
    before = set(live_servers())
    for strategy in ("aside", "through"):
        real = run_cell(
            sc, Cell(sc.name, strategy, "redis", 1), backend=RedisBackend(binary=binary)
        )
        sim = run(sc, strategy)
        s = real.summary
        assert s["errors"] == 0, real.notes
        assert s["requests"] == sim["requests"] == 1000
        assert s["writes"] == int(writes.sum())
        assert abs(s["hit_ratio"] - sim["hit_ratio"]) < 0.1, (s["hit_ratio"], sim["hit_ratio"])
        # the trace's 8 KiB objects are 8 KiB values on the servers (used_memory)
        assert s["cache_memory"] > s["cache_keys"] * 8 * 1024
    assert set(live_servers()) <= before
