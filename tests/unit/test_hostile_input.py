"""Hostile scenario input, one rule at a time: names the filesystem would refuse, seeds
and backends given twice, faults outside the run, runs that measure nothing, values no
backend can hold, YAML that would blow up a loader, and command-line narrowing checked
like the YAML. (tests/fuzz runs the same through the command, with many more cases.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from lab import bounded_yaml
from lab.limits import check, estimate
from lab.names import MAX_NAME_BYTES, check_name, one_line
from lab.scenario import Scenario, ScenarioError, check_overrides, load_scenario, parse_scenario
from tests.helpers import make_scenario


def refused(**overrides: Any) -> str:
    with pytest.raises(ScenarioError) as caught:
        make_scenario(**overrides)
    message = str(caught.value)
    assert "\n" not in message
    return message


STRATEGY = {"read": "cache-aside", "write": "invalidate", "ttl": 60}


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("a" * 300, "at most 100 bytes"),
        ("é" * 51, "at most 100 bytes"),  # 102 bytes in UTF-8
        ("a\0b", "control character"),
        ("a\nb", "control character"),
        ("a\tb", "control character"),
        ("a\u2028b", "control character"),  # a line separator
        ("a\u202eb", "control character"),  # right-to-left override
        ("a/b", "'/'"),
        ("a\\b", "'\\\\'"),
        (".hidden", "start with '.'"),
        ("..", "start with '.'"),
        ("", "empty"),
        ("   ", "empty"),
        (" lead", "space"),
    ],
)
def test_strategy_names_are_checked_for_the_filesystem(name: str, problem: str) -> None:
    message = refused(strategies={name: STRATEGY})
    assert message.startswith("test: strategies")
    assert problem in message


@pytest.mark.parametrize("name", ["cache-aside", "ttl 30s", "café", "a|b", "x" * MAX_NAME_BYTES])
def test_ordinary_names_pass(name: str) -> None:
    assert list(make_scenario(strategies={name: STRATEGY}).strategies) == [name]
    assert check_name(name) == name


def test_scenario_names_are_checked_too() -> None:
    assert "at most 100 bytes" in refused(name="a" * 101)
    assert "name:" in refused(name="a\nb")


def test_seeds_and_backends_are_each_given_once() -> None:
    assert refused(seeds=[1, 1]) == "test: seeds: seed 1 is given twice (each one names a run)"
    assert "backend 'sim' is given twice" in refused(backends=["sim", "sim"])
    assert "seeds.0: must be >= 0" in refused(seeds=[-1])
    assert "seeds.0: must be <= " in refused(seeds=[2**64])


def test_a_fault_outside_the_run_is_refused() -> None:
    fault = {"kind": "origin_down", "at": 1000, "duration": 1}
    message = refused(requests=None, duration=2, faults=[fault])
    assert message.startswith("test: faults.0.at: 1000s is after the run ends (duration 2s)")
    # requests at a rate end when the last arrival does (~2 s here)
    assert "faults.0.at" in refused(faults=[fault])
    inside = make_scenario(requests=None, duration=2, faults=[{**fault, "at": 1.5}])
    assert inside.faults[0].at == 1.5
    # a closed loop of a request count ends when it ends: not checked
    closed = {"arrivals": {"process": "closed", "clients": 2}}
    assert make_scenario(workload=closed, faults=[fault]).faults


def test_a_run_that_would_measure_nothing_is_refused() -> None:
    message = refused(requests=None, duration="1ns")
    assert message.startswith("test: duration: 1e-09s at 1000/s gives 1e-06 measured requests")
    assert "make it at least 0.001s" in message
    assert "warmup: 10s is after the last of 2000 requests" in refused(warmup=10)
    assert make_scenario(requests=None, duration="5ms").duration == 0.005


def test_sizes_no_backend_can_hold_are_refused() -> None:
    assert "at most 2**53 keys" in refused(keyspace={"keys": 2**60})
    assert "at most 512MiB per value" in refused(keyspace={"value_size": "1000000GiB"})


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_infinite_and_nan_numbers_are_refused(value: float) -> None:
    assert "finite number" in refused(workload={"keys": {"distribution": "zipf", "s": value}})


def test_limits_are_not_part_of_the_experiment() -> None:
    plain = make_scenario()
    roomy = make_scenario(limits={"memory": "64GiB", "time": "10h"})
    assert plain.config_hash() == roomy.config_hash()
    assert roomy.limits.memory == 64 * 2**30


# --- the YAML loader ---------------------------------------------------------------------------

BASE = "name: t\nrequests: 400\nstrategies: {a: {read: cache-aside, write: invalidate}}\n"
LAUGHS = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9)).replace(
    "*l0", "lol"
)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("description: " + "[" * 5000 + "]" * 5000 + "\n" + BASE, "nested more than 32 levels"),
        (LAUGHS + BASE + "description: *l8\n", "alias bomb"),
        (LAUGHS + BASE, "alias bomb"),  # anywhere, not only where the schema looks
        (LAUGHS.replace("l8:", "faults:") + BASE, "alias bomb"),
        ("a: &a [*a]\n" + BASE, "refers to a node that contains it"),
        (BASE.replace("400", "1" + "0" * 5000), "a number with 5001 digits"),
        (BASE + "requests: 5\n", "field 'requests' is given twice"),
        (BASE + "description: [\n", "invalid YAML"),
        ("--- 1\n--- 2\n", "invalid YAML"),
    ],
)
def test_the_loader_refuses_in_one_line(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and problem in message and "\n" not in message


def test_deep_nesting_through_aliases_is_measured_expanded() -> None:
    chain = "a0: &a0 " + "[" * 20 + "x" + "]" * 20 + "\n"
    chain += "".join(f"a{i}: &a{i} " + "[" * 15 + f"*a{i - 1}" + "]" * 15 + "\n" for i in (1, 2))
    with pytest.raises(bounded_yaml.YamlRefused, match="once aliases are expanded"):
        bounded_yaml.loads(chain)


def test_bytes_that_are_not_utf8_or_too_many(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_bytes(BASE.encode() + b"description: \xff\xfe\n")
    with pytest.raises(ScenarioError, match=r"x.yaml:4: not UTF-8 text \(byte 0xff\)"):
        load_scenario(path)
    path.write_bytes(b"\xef\xbb\xbf" + BASE.encode())  # a byte-order mark is fine
    assert load_scenario(path).name == "t"
    path.write_bytes(BASE.encode() + b"# " + b"x" * bounded_yaml.MAX_BYTES)
    with pytest.raises(ScenarioError, match="larger than 256 KiB"):
        load_scenario(path)


def test_error_lines_escape_what_the_input_put_in_them() -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario({"name": "t", "requests": 1, "strategies": {"a\nb": {"reed": 1}}})
    assert "\n" not in str(caught.value) and "a\\nb" in str(caught.value)
    assert one_line("x\r\ny\x1b[31m") == "x\\r\\ny\\x1b[31m"
    assert len(one_line("z" * 10_000)) == 400


# --- command-line narrowing ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"seeds": [-1]}, "s.yaml: --seed: must be >= 0, got -1"),
        ({"seeds": [3, 3]}, "s.yaml: --seed: seed 3 is given twice"),
        ({"seeds": [2**70]}, "s.yaml: --seed: must be <= "),
        ({"backends": ["sim", "sim"]}, "s.yaml: --backend: backend 'sim' is given twice"),
        (
            {"backends": ["no-such-backend"]},
            "s.yaml: --backend: unknown backend 'no-such-backend'; known: ",
        ),
        ({"strategies": ["nope"]}, "s.yaml: --strategy: no strategy named 'nope'; it has"),
        ({"strategies": ["cache-aside"] * 2}, "s.yaml: --strategy: 'cache-aside' is given twice"),
    ],
)
def test_command_line_narrowing_is_validated_like_the_yaml(
    options: dict[str, Any], problem: str
) -> None:
    scenario = make_scenario(seeds=[1, 2])
    with pytest.raises(ScenarioError) as caught:
        check_overrides(scenario, "s.yaml", **options)
    assert str(caught.value).startswith(problem)
    check_overrides(scenario, "s.yaml", seeds=[7], backends=["sim"], strategies=["cache-aside"])
    assert scenario.seeds == [1, 2]  # the scenario itself is left as written


# --- limits ---------------------------------------------------------------------------------


def test_every_shipped_scenario_is_within_the_default_limits() -> None:
    repo = Path(__file__).resolve().parents[2]
    for path in sorted((repo / "scenarios").glob("*.yaml")):
        scenario = load_scenario(path)
        found = check(scenario, scenario.cells(), str(path))
        assert found.memory < 2**30 and found.seconds < 900, (path, found)


@pytest.mark.parametrize(
    ("overrides", "driver"),
    [
        ({"keyspace": {"keys": 10**7}, "origin": {"concurrency": 10**9}}, "origin.concurrency"),
        ({"requests": None, "duration": 30, "metrics": {"interval": "1ns"}}, "metrics.interval"),
        ({"workload": {"instances": 10**6}}, "workload.instances"),
        ({"requests": 10**15}, "requests"),
        ({"requests": None, "duration": "1000000000000s"}, "rate x duration"),
        ({"workload": {"arrivals": {"process": "closed", "clients": 10**7}}}, "clients"),
        (
            {
                "requests": None,
                "duration": 10,
                "workload": {"arrivals": {"process": "poisson", "rate": "1000000000000/s"}},
            },
            "rate x duration",
        ),
    ],
)
def test_over_the_limits_is_one_line_with_the_estimate_and_the_way_out(
    overrides: dict[str, Any], driver: str
) -> None:
    scenario = make_scenario(**overrides)
    with pytest.raises(ScenarioError) as caught:
        check(scenario, scenario.cells(), "x.yaml")
    message = str(caught.value)
    assert message.startswith("x.yaml: limits: this needs about ")
    assert driver in message and "--i-know" in message and "limits: {memory" in message
    assert "\n" not in message
    assert check(scenario, scenario.cells(), "x.yaml", i_know=True).memory > 0


def test_raised_limits_let_a_big_scenario_through() -> None:
    big = {"workload": {"instances": 10**6}}
    scenario = make_scenario(**big)
    with pytest.raises(ScenarioError):
        check(scenario, scenario.cells(), "x.yaml")
    roomy = make_scenario(**big, limits={"memory": "64GiB", "time": "10h"})
    assert check(roomy, roomy.cells(), "x.yaml").memory > 4 * 2**30


def test_a_closed_loop_that_never_lets_time_pass_is_refused() -> None:
    zero = {"distribution": "constant", "value": 0}
    scenario = make_scenario(
        requests=None,
        duration=1,
        topology={"network": {"rtt": zero}, "service_time": zero},
        workload={"arrivals": {"process": "closed", "clients": 4}},
    )
    with pytest.raises(ScenarioError, match="may never let the clock reach"):
        check(scenario, scenario.cells(), "x.yaml")


def test_the_estimate_grows_with_what_the_scenario_asks_for() -> None:
    def cost(**overrides: Any) -> tuple[float, float]:
        scenario = make_scenario(**overrides)
        found = estimate(scenario, scenario.cells())
        return found.memory, found.seconds

    small, more = cost(requests=1000), cost(requests=100_000)
    assert more[1] > small[1]
    assert cost(workload={"instances": 1000})[0] > cost()[0]
    assert cost(seeds=[1, 2, 3])[1] > cost()[1]
    lock = {"stampede": {"lock": {"poll": "1us"}}, **STRATEGY}
    assert cost(strategies={"locked": lock})[1] > 100 * cost()[1]


def test_validate_refuses_what_run_would(tmp_path: Path) -> None:
    data = yaml.safe_load(BASE)
    data["workload"] = {"instances": 10**6}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    scenario = load_scenario(tmp_path / "s.yaml")
    assert isinstance(scenario, Scenario)
    with pytest.raises(ScenarioError, match=r"workload\.instances"):
        check(scenario, scenario.cells(), "s.yaml")


def test_a_validator_surprised_by_a_type_still_gives_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import lab.workload.ycsb as ycsb

    assert "preset is a name" in refused(workload={"preset": []})

    def broken(data: dict[str, Any]) -> dict[str, Any]:
        raise TypeError("unhashable type: 'list'")

    monkeypatch.setattr(ycsb, "expand", broken)
    with pytest.raises(ScenarioError) as caught:
        make_scenario()
    assert str(caught.value).startswith("test: a field has a value of an unexpected kind")
