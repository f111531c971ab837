"""The `sweep:` section: points named by their values, one scenario each, validated like
any file, with stable result paths and counts in `validate` and `list`."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.cli import main
from lab.limits import estimate
from lab.scenario import ScenarioError, parse_scenario

BASE = {
    "name": "sw",
    "duration": "3s",
    "warmup": "1s",
    "seeds": [1, 2],
    "keyspace": {"keys": 200},
    "workload": {"mix": {"read": 0.9, "write": 0.1}, "arrivals": {"rate": "300/s"}},
    "strategies": {
        "a": {"read": "cache-aside", "write": "around", "ttl": "1s"},
        "b": {"read": "cache-aside", "write": "invalidate", "ttl": "1s"},
    },
}


def sweep(**section: object) -> dict[str, object]:
    return {**BASE, "sweep": section}


def test_grid_is_a_product_and_zip_goes_value_by_value() -> None:
    sc = parse_scenario(
        sweep(
            grid={"strategies.*.ttl": ["100ms", "1s", "1m"], "topology.capacity": [50, 100]},
            zip={"workload.mix.write": [0.1, 0.3], "workload.arrivals.rate": ["300/s", "600/s"]},
        )
    )
    names = [p.name for p in sc.points()]
    assert len(names) == 3 * 2 * 2
    assert names[0] == "ttl=100ms,capacity=50,write=0.1,rate=300_per_s"
    assert names[1] == "ttl=100ms,capacity=50,write=0.3,rate=600_per_s"
    cells = sc.cells()
    assert len(cells) == 12 * 2 * 2  # points x strategies x seeds
    last = sc.at(names[-1])
    assert last.strategies["a"].ttl == last.strategies["b"].ttl == 60.0
    assert last.topology.capacity == 100 and last.workload.arrivals.rate == 600.0
    assert last.workload.mix.read == pytest.approx(0.7)  # the other share is the rest
    assert last.sweep is None and last.points() == []
    assert last.params == {
        "strategies.*.ttl": 60.0,
        "topology.capacity": 100,
        "workload.mix.write": 0.3,
        "workload.arrivals.rate": 600.0,
    }
    assert cells[0].folder == f"{names[0]}/a.sim.s1"


def test_point_names_and_hashes_are_stable_and_distinct() -> None:
    doc = sweep(grid={"topology.capacity": [50, 100]})
    one, two = parse_scenario(doc), parse_scenario(doc)
    hashes = [p.scenario.config_hash() for p in one.points()]
    assert hashes == [p.scenario.config_hash() for p in two.points()]
    assert len(set(hashes)) == 2
    plain = parse_scenario({**BASE, "topology": {"capacity": 50}})
    assert plain.config_hash() == hashes[0]  # a point is the scenario it stands for


def test_fault_parameters_and_wildcards() -> None:
    doc = {
        **sweep(grid={"faults.0.duration": ["500ms", "1s"], "faults.*.at": ["1s", "2s"]}),
        "faults": [{"kind": "node_crash", "at": "1s", "duration": "1s"}],
    }
    sc = parse_scenario(doc)
    assert next(p.name for p in sc.points()) == "duration=500ms,at=1s"
    assert sc.at("duration=1s,at=2s").faults[0].at == 2.0


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"grid": {"topology.capacity": [10, 0]}}, 'sweep.grid["topology.capacity"][1]: must be'),
        (
            {"grid": {"keyspace.keyz": [1]}},
            'sweep.grid["keyspace.keyz"][0]: unknown field',
        ),
        ({"grid": {"seeds": [[1]]}}, 'sweep.grid["seeds"]: seeds cannot be swept'),
        ({}, "sweep: give grid or zip"),
        (
            {"zip": {"topology.capacity": [1, 2], "keyspace.keys": [1]}},
            'sweep.zip["keyspace.keys"]',
        ),
        ({"grid": {"duration": ["3s", "500ms"]}}, 'sweep.grid["duration"][1]: warmup must be'),
        (
            {"grid": {"strategies.c.ttl": ["1s"]}},
            "sweep.grid[\"strategies.c.ttl\"][0]: the scenario has no strategy named 'c' "
            "(it has: 'a', 'b')",
        ),
        ({"grid": {"strategies.zz": [{"read": "cache-aside"}]}}, 'sweep.grid["strategies.zz"][0]'),
    ],
)
def test_bad_sweeps_are_one_line_naming_the_value(section: dict[str, object], message: str) -> None:
    with pytest.raises(ScenarioError) as err:
        parse_scenario(sweep(**section), "x.yaml")
    assert str(err.value).startswith(f"x.yaml: {message}"), str(err.value)


def test_estimate_counts_every_cell_at_its_point() -> None:
    sc = parse_scenario(sweep(grid={"workload.arrivals.rate": ["300/s", "30000/s"]}))
    found = estimate(sc, sc.cells())
    assert found.runs == 8
    one = parse_scenario(
        {**BASE, "workload": {**BASE["workload"], "arrivals": {"rate": "30000/s"}}}
    )  # type: ignore[dict-item]
    assert found.seconds > estimate(one, one.cells()).seconds


def test_validate_and_list_say_how_many_cells(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    (tmp_path / "sw.yaml").write_text(
        yaml.safe_dump(sweep(grid={"topology.capacity": [50, 100, 150]}))
    )
    assert main(["validate", str(tmp_path / "sw.yaml")]) == 0
    assert "2 strategies, a sweep of 3 cells, 12 runs" in capsys.readouterr().out
    assert main(["list", "--scenarios", str(tmp_path)]) == 0
    assert "[a sweep of 3 cells]" in capsys.readouterr().out


def test_a_sweep_runs_into_stable_paths_with_its_values(tmp_path: Path) -> None:
    import yaml

    from lab.results import load_all

    path = tmp_path / "sw.yaml"
    path.write_text(yaml.safe_dump(sweep(grid={"topology.capacity": [50, 100]})))
    assert main(["run", str(path), "--results", str(tmp_path / "r"), "--seed", "1", "--quiet"]) == 0
    assert (tmp_path / "r/sw/capacity=50/a.sim.s1/summary.json").exists()
    frame = load_all(tmp_path / "r")
    assert sorted(frame["point"]) == ["capacity=100"] * 2 + ["capacity=50"] * 2
    assert set(frame["params.topology.capacity"]) == {50, 100}


def test_a_sweep_split_by_seed_over_two_folders_is_one_experiment(tmp_path: Path) -> None:
    import yaml

    from lab.results import load_all

    path = tmp_path / "sw.yaml"
    path.write_text(yaml.safe_dump(sweep(grid={"topology.capacity": [50, 100]})))
    for seed in ("1", "2"):
        out = str(tmp_path / f"r{seed}")
        args = ["run", str(path), "--results", out, "--seed", seed, "--strategy", "a"]
        assert main([*args, "--quiet", "--jobs", "1"]) == 0
    frame = load_all(tmp_path / "r1", tmp_path / "r2")
    assert set(frame["strategy"]) == {"a"}  # not labelled by folder: seeds are repetitions
    assert len(frame) == 4
