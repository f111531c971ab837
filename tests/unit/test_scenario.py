"""lab.scenario: parsing, one-line errors, hashing, matrix expansion and the shipped files."""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any

import pytest

from lab.scenario import Cell, ScenarioError, load_scenario, parse_scenario

SCENARIOS = sorted((Path(__file__).resolve().parents[2] / "scenarios").glob("*.yaml"))
ONE_LINE = re.compile(r"^x\.yaml: [^:\n]+: [^\n]+$")


def minimal(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "x", "duration": "5s", "strategies": {"a": {}}}
    data.update(overrides)
    return data


def error_of(data: object) -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, "x.yaml")
    message = str(info.value)
    assert "\n" not in message, message
    return message


# --- parsing ---------------------------------------------------------------------------------


def test_minimal_scenario_gets_defaults() -> None:
    s = parse_scenario(minimal(), "x.yaml")
    assert s.name == "x"
    assert s.seeds == [1]
    assert s.duration == 5.0
    assert s.requests is None
    assert s.warmup == 0.0
    assert s.backends == ["sim"]
    assert s.faults == []
    assert s.keyspace.keys == 10_000
    assert s.keyspace.value_size == 1024
    assert s.workload.mix.read == 0.95
    assert s.workload.mix.write == pytest.approx(0.05)
    assert s.workload.arrivals.process == "poisson"
    assert s.workload.arrivals.rate == 1000.0
    assert s.topology.nodes == 1
    assert s.topology.sharding == "ketama"
    assert s.topology.capacity is None
    assert s.topology.eviction == "lru"
    spec = s.strategies["a"]
    assert (spec.read, spec.write, spec.ttl) == ("cache-aside", "invalidate", None)


def test_human_units_become_seconds_bytes_and_rates() -> None:
    s = parse_scenario(
        minimal(
            duration="2m",
            warmup="500ms",
            keyspace={"keys": 100, "value_size": "4KiB"},
            workload={"arrivals": {"process": "poisson", "rate": "300/min"}},
            topology={
                "capacity": "10k keys",
                "network": {"rtt": {"distribution": "constant", "value": "250us"}},
            },
            origin={"read_latency": {"distribution": "lognormal", "median": "5ms", "p99": "1s"}},
            strategies={"a": {"write": "around", "ttl": "1h"}},
            metrics={"interval": "250ms"},
        ),
        "x.yaml",
    )
    assert s.duration == 120.0
    assert s.warmup == pytest.approx(0.5)
    assert s.keyspace.value_size == 4096
    assert s.workload.arrivals.rate == pytest.approx(5.0)
    assert s.topology.capacity == 10_000
    assert s.topology.network.rtt.value == pytest.approx(250e-6)
    assert s.origin.read_latency.median == pytest.approx(0.005)
    assert s.origin.read_latency.p99 == 1.0
    assert s.strategies["a"].ttl == 3600.0
    assert s.metrics.interval == 0.25
    for value in (s.duration, s.warmup, s.strategies["a"].ttl, s.origin.read_latency.median):
        assert isinstance(value, float)


def test_think_time_shorthand_is_exponential() -> None:
    s = parse_scenario(
        minimal(workload={"arrivals": {"process": "closed", "clients": 8, "think": "2ms"}}),
        "x.yaml",
    )
    think = s.workload.arrivals.think
    assert think is not None
    assert think.distribution == "exponential"
    assert think.mean == pytest.approx(0.002)


def test_mix_read_alone_implies_write() -> None:
    s = parse_scenario(minimal(workload={"mix": {"read": 0.7}}), "x.yaml")
    assert s.workload.mix.write == pytest.approx(0.3)


def test_mix_write_alone_implies_read() -> None:
    s = parse_scenario(minimal(workload={"mix": {"write": 0.3}}), "x.yaml")
    assert s.workload.mix.read == pytest.approx(0.7)
    assert s.workload.mix.write == 0.3


def test_mix_both_adding_up() -> None:
    s = parse_scenario(minimal(workload={"mix": {"read": 0.25, "write": 0.75}}), "x.yaml")
    assert (s.workload.mix.read, s.workload.mix.write) == (0.25, 0.75)


# --- errors ----------------------------------------------------------------------------------


def test_fraction_out_of_range_exact_message() -> None:
    assert (
        error_of(minimal(workload={"mix": {"read": 1.5}}))
        == "x.yaml: workload.mix.read: must be between 0 and 1, got 1.5"
    )


def test_negative_fraction() -> None:
    assert (
        error_of(minimal(workload={"mix": {"read": -0.1}}))
        == "x.yaml: workload.mix.read: must be between 0 and 1, got -0.1"
    )


def test_not_a_mapping() -> None:
    assert error_of([1, 2]).startswith("x.yaml: ")
    assert "mapping" in error_of(None)


# Each case: overrides of the minimal scenario, the field named, phrases the problem contains.
ERROR_CASES: list[tuple[str, dict[str, Any], str, list[str]]] = [
    ("unknown-field", {"topology": {"nodez": 3}}, "topology.nodez", ["unknown field"]),
    ("unknown-top-field", {"durration": "5s"}, "durration", ["unknown field"]),
    (
        "mix-not-one",
        {"workload": {"mix": {"read": 0.5, "write": 0.3}}},
        "workload.mix",
        ["read + write must be 1", "0.5 + 0.3"],
    ),
    (
        "unknown-read-path",
        {"strategies": {"a": {"read": "read-thruogh"}}},
        "strategies.a.read",
        ["unknown read path", "'read-thruogh'", "known: cache-aside"],
    ),
    (
        "unknown-write-path",
        {"strategies": {"a": {"write": "invalidat"}}},
        "strategies.a.write",
        [
            "unknown write path",
            "'invalidat'",
            "known: around, behind, bump, invalidate, through, update",
        ],
    ),
    (
        "lognormal-p99-equal",
        {"origin": {"read_latency": {"distribution": "lognormal", "median": "5ms", "p99": "5ms"}}},
        "origin.read_latency",
        ["p99 must be larger than its median"],
    ),
    (
        "lognormal-p99-below",
        {"topology": {"network": {"rtt": {"distribution": "lognormal", "median": 1, "p99": 0.5}}}},
        "topology.network.rtt",
        ["p99 must be larger than its median"],
    ),
    (
        "lognormal-missing-p99",
        {"origin": {"write_latency": {"distribution": "lognormal", "median": "5ms"}}},
        "origin.write_latency",
        ["needs median and p99"],
    ),
    (
        "poisson-without-rate",
        {"workload": {"arrivals": {"process": "poisson"}}},
        "workload.arrivals",
        ["poisson", "need a rate"],
    ),
    (
        "closed-with-rate",
        {"workload": {"arrivals": {"process": "closed", "clients": 4, "rate": "100/s"}}},
        "workload.arrivals",
        ["rate applies to process: poisson"],
    ),
    (
        "closed-without-clients",
        {"workload": {"arrivals": {"process": "closed"}}},
        "workload.arrivals",
        ["need clients"],
    ),
    ("bad-duration-unit", {"duration": "5 parsecs"}, "duration", ["'5 parsecs'", "duration"]),
    (
        "bad-rate-unit",
        {"workload": {"arrivals": {"rate": "fast"}}},
        "workload.arrivals.rate",
        ["'fast'", "rate"],
    ),
    (
        "bad-size-unit",
        {"keyspace": {"value_size": "1 parsec"}},
        "keyspace.value_size",
        ["'1 parsec'", "size"],
    ),
    (
        "bad-ttl-unit",
        {"strategies": {"a": {"ttl": "5 lightyears"}}},
        "strategies.a.ttl",
        ["'5 lightyears'"],
    ),
    (
        "capacity-unit",
        {"topology": {"capacity": "5 parsecs"}},
        "topology.capacity",
        ["'5 parsecs'", "keys", "64MiB"],
    ),
    (
        "keys-in-bytes",
        {"keyspace": {"keys": "64MiB"}},
        "keyspace.keys",
        ["'64MiB'", "topology.capacity"],
    ),
    (
        "value-size-distribution-params",
        {"keyspace": {"value_size": {"distribution": "lognormal", "median": "1KiB"}}},
        "keyspace.value_size",
        ["needs median and p99"],
    ),
    (
        "value-size-distribution-kind",
        {"keyspace": {"value_size": {"distribution": "zipf"}}},
        "keyspace.value_size",
        ["'zipf'", "lognormal"],
    ),
    ("zero-duration", {"duration": 0}, "duration", ["must be > 0", "got 0"]),
    ("nodes-zero", {"topology": {"nodes": 0}}, "topology.nodes", ["must be >= 1", "got 0"]),
    (
        "bad-sharding",
        {"topology": {"sharding": "rendezvous"}},
        "topology.sharding",
        ["must be one of", "'rendezvous'"],
    ),
    (
        "fault-missing-duration",
        {"faults": [{"kind": "partition", "at": "10s"}]},
        "faults.0.partition.duration",
        ["required field is missing"],
    ),
    (
        "fault-unknown-kind",
        {"faults": [{"kind": "meteor", "at": "1s", "duration": "1s"}]},
        "faults.0.kind",
        ["unknown kind 'meteor'", "node_crash"],
    ),
    (
        "hot-share",
        {"workload": {"keys": {"hot_share": 2}}},
        "workload.keys.hot_share",
        ["must be between 0 and 1, got 2"],
    ),
]


@pytest.mark.parametrize(
    ("overrides", "field", "phrases"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_errors_are_one_line_naming_the_field(
    overrides: dict[str, Any], field: str, phrases: list[str]
) -> None:
    message = error_of(minimal(**overrides))
    assert ONE_LINE.match(message), message
    assert message.startswith(f"x.yaml: {field}: "), message
    for phrase in phrases:
        assert phrase in message, (phrase, message)


def test_both_duration_and_requests() -> None:
    message = error_of(minimal(requests=1000))
    assert ONE_LINE.match(message), message
    assert "exactly one of duration" in message
    assert "requests" in message


def test_neither_duration_nor_requests() -> None:
    data = minimal()
    del data["duration"]
    message = error_of(data)
    assert ONE_LINE.match(message), message
    assert "exactly one of duration" in message


@pytest.mark.parametrize("warmup", ["5s", "6s", 5])
def test_warmup_not_shorter_than_duration(warmup: object) -> None:
    message = error_of(minimal(warmup=warmup))
    assert ONE_LINE.match(message), message
    assert "warmup must be shorter than duration" in message


def test_warmup_just_under_duration_is_fine() -> None:
    assert parse_scenario(minimal(warmup="4999ms"), "x.yaml").warmup == pytest.approx(4.999)


@pytest.mark.parametrize(
    "overrides",
    [{"topology": {"capacity": math.inf}}, {"keyspace": {"value_size": math.inf}}],
    ids=["capacity", "value_size"],
)
def test_infinite_sizes_are_one_line_errors(overrides: dict[str, Any]) -> None:
    error_of(minimal(**overrides))


@pytest.mark.parametrize(
    "overrides",
    [{"duration": math.inf}, {"workload": {"arrivals": {"rate": math.inf}}}],
    ids=["duration", "rate"],
)
def test_infinite_durations_and_rates_are_rejected(overrides: dict[str, Any]) -> None:
    error_of(minimal(**overrides))


def test_several_problems_still_one_line() -> None:
    message = error_of(minimal(topology={"nodez": 1, "nodes": 0}, duration="5 parsecs"))
    assert ONE_LINE.match(message), message
    assert "more problem" in message


# --- loading files ---------------------------------------------------------------------------


def test_load_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert message == f"{path}: no such scenario file"


def test_load_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nduration: 5s\nstrategies:\n  a: {read: cache-aside\n  b: {}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:5: invalid YAML: ")  # where the open {...} breaks


def test_load_tab_indentation_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "tabs.yaml"
    path.write_text("name: x\nduration: 5s\nstrategies:\n\ta: {}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value).startswith(f"{path}:4: invalid YAML: ")


def test_load_duplicate_field_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("name: x\nduration: 5s\nstrategies: {a: {}}\nduration: 6s\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert message.startswith(f"{path}:4: invalid YAML: ")
    assert "'duration'" in message
    assert "twice" in message


def test_load_unhashable_key_is_a_scenario_error(tmp_path: Path) -> None:
    path = tmp_path / "unhashable.yaml"
    path.write_text("name: x\n[1, 2]: 5s\nstrategies: {a: {}}\n")
    with pytest.raises(ScenarioError, match=r":2: invalid YAML: "):
        load_scenario(path)


def test_load_validation_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nduration: 5s\nstrategies: {a: {}}\nworkload: {mix: {read: 2}}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value) == f"{path}: workload.mix.read: must be between 0 and 1, got 2"


def test_load_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("name: ok\nrequests: 100\nstrategies: {a: {write: update}}\n")
    s = load_scenario(path)
    assert s.requests == 100
    assert s.strategies["a"].write == "update"


# --- hashing, matrix, scaling ----------------------------------------------------------------


def test_config_hash_is_stable_for_equal_scenarios() -> None:
    data = minimal(seeds=[1, 2], workload={"mix": {"read": 0.9}})
    a = parse_scenario(data, "a.yaml")
    b = parse_scenario(copy.deepcopy(data), "b.yaml")
    assert a.config_hash() == b.config_hash()
    assert re.fullmatch(r"[0-9a-f]{12}", a.config_hash())


def test_config_hash_ignores_how_units_were_written() -> None:
    a = parse_scenario(minimal(duration="5s", warmup="500ms"), "x.yaml")
    b = parse_scenario(minimal(duration=5, warmup=0.5), "x.yaml")
    assert a.config_hash() == b.config_hash()


@pytest.mark.parametrize(
    "change",
    [
        {"duration": "6s"},
        {"seeds": [2]},
        {"workload": {"mix": {"read": 0.9}}},
        {"topology": {"capacity": "1000 keys"}},
        {"strategies": {"a": {"ttl": "1s"}}},
        {"strategies": {"b": {}}},
    ],
)
def test_config_hash_changes_with_a_field(change: dict[str, Any]) -> None:
    base = parse_scenario(minimal(), "x.yaml")
    changed = parse_scenario(minimal(**change), "x.yaml")
    assert base.config_hash() != changed.config_hash()


def test_cells_expand_strategy_backend_seed() -> None:
    s = parse_scenario(
        minimal(seeds=[1, 2, 3], backends=["sim", "redis"], strategies={"a": {}, "b": {}}),
        "x.yaml",
    )
    cells = s.cells()
    assert len(cells) == 12
    assert len(set(cells)) == 12
    assert {(c.strategy, c.backend, c.seed) for c in cells} == {
        (st, be, seed) for st in ("a", "b") for be in ("sim", "redis") for seed in (1, 2, 3)
    }
    assert all(c.scenario == "x" for c in cells)
    assert Cell("x", "a", "sim", 2).run_id == "a.sim.s2"
    assert len({c.run_id for c in cells}) == 12


def test_cells_can_be_narrowed() -> None:
    s = parse_scenario(
        minimal(seeds=[1, 2, 3], backends=["sim", "redis"], strategies={"a": {}, "b": {}}),
        "x.yaml",
    )
    cells = s.cells(backends=["sim"], strategies=["b"], seeds=[3])
    assert cells == [Cell("x", "b", "sim", 3)]


def test_scaled_shortens_duration_and_keeps_first_seed() -> None:
    s = parse_scenario(minimal(duration="30s", warmup="5s", seeds=[7, 8, 9]), "x.yaml")
    quick = s.scaled(0.1)
    assert quick.duration == pytest.approx(3.0)
    assert quick.warmup == pytest.approx(0.5)
    assert quick.seeds == [7]
    assert quick.requests is None
    assert (s.duration, s.warmup, s.seeds) == (30.0, 5.0, [7, 8, 9])  # original untouched
    assert quick.config_hash() != s.config_hash()


def test_scaled_shortens_requests() -> None:
    data = minimal(requests=15_000, seeds=[4, 5])
    del data["duration"]
    s = parse_scenario(data, "x.yaml")
    quick = s.scaled(0.1)
    assert quick.requests == 1500
    assert quick.duration is None
    assert quick.seeds == [4]
    assert s.scaled(1e-9).requests == 1


# --- the shipped scenarios -------------------------------------------------------------------


def test_there_are_shipped_scenarios() -> None:
    assert SCENARIOS


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_shipped_scenario_loads(path: Path) -> None:
    s = load_scenario(path)
    assert s.cells()
    quick = s.scaled(0.1)
    assert len(quick.seeds) == 1


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_shipped_scenario_starts_with_what_it_shows(path: Path) -> None:
    lines = path.read_text().splitlines()
    assert lines[0].startswith("#"), "the first line must be a comment"
    comment = []
    for line in lines:
        if not line.startswith("#"):
            break
        comment.append(line.lstrip("#").strip())
    text = " ".join(comment)
    assert "shows" in text.lower(), text
    assert len(text.split()) >= 8, "say what the scenario shows in a sentence or more"


def test_scaled_moves_faults_with_the_run() -> None:
    data = minimal(
        duration="30s",
        topology={"nodes": 2},
        faults=[{"kind": "node_crash", "node": 1, "at": "10s", "duration": "5s"}],
    )
    quick = parse_scenario(data, "x.yaml").scaled(0.2)
    assert (quick.faults[0].at, quick.faults[0].duration) == pytest.approx((2.0, 1.0))
