"""Backends: the registry (names, errors), the protocol (a third backend in one file) and
fault kinds as data plus one handler per kind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab import backends, cli
from lab.backend import CellSkipped, FaultHandlers
from lab.runner import run_cell
from lab.scenario import FAULT_MODELS, INTERRUPTS_CACHE, NodePause, fault_kind
from tests.helpers import make_scenario

DICT = "tests.unit.dict_backend:DictBackend"


def _yaml(tmp_path: Path, **fields: Any) -> Path:
    data: dict[str, Any] = {
        "name": "t",
        "requests": 2000,
        "keyspace": {"keys": 100},
        "workload": {"mix": {"read": 0.9}, "arrivals": {"process": "poisson", "rate": 20000}},
        "strategies": {"aside": {"read": "cache-aside", "write": "invalidate", "ttl": 60}},
    }
    data.update(fields)
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_registry_names_the_command_line_choices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert backends.names() == ["sim", "redis", "memcached"]
    with pytest.raises(SystemExit) as exited:
        cli.main(["run", str(_yaml(tmp_path)), "--backend", "nope"])
    assert exited.value.code == 2
    assert (
        "invalid choice: 'nope' (choose from 'sim', 'redis', 'memcached')"
        in capsys.readouterr().err
    )


def test_an_unknown_backend_is_one_line_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _yaml(tmp_path, backends=["sim", "memcachd"])
    assert cli.main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("backends.1: unknown backend 'memcachd'; known: sim, redis, memcached"), err
    assert "\n" not in err


def test_every_registered_backend_loads_and_describes_itself() -> None:
    for name in backends.names():
        backend = backends.load(name)
        assert backend.name == name
        assert backend.capabilities and isinstance(backend.capabilities, frozenset)
        assert backend.describe().strip()
    with pytest.raises(backends.UnknownBackend, match="known: sim, redis, memcached"):
        backends.load("nope")


def test_the_sim_and_redis_backends_handle_every_fault_kind() -> None:
    """A new fault kind is its model plus one handler per backend: this names the
    backend that lacks one."""
    for name in ("sim", "redis"):
        handled = backends.load(name).faults.kinds
        missing = sorted(fault_kind(m) for m in FAULT_MODELS if m not in handled)
        assert not missing, f"the {name} backend has no handler for {missing}"


def test_fault_kinds_carry_their_properties() -> None:
    by_kind = {fault_kind(m): m for m in FAULT_MODELS}
    assert {k for k, m in by_kind.items() if m.destructive} == {
        "node_crash",
        "node_pause",
        "failover",
    }
    assert {k for k, m in by_kind.items() if m.network} == {"latency", "partition", "bus_delay"}
    assert {k for k, m in by_kind.items() if m.empties_cache} == {"node_crash"}
    assert {"node_crash", "node_pause", "partition", "failover"} == INTERRUPTS_CACHE
    for kind, model in by_kind.items():
        assert model.target in ("node", "origin", "bus"), kind
        assert ("node" in model.model_fields) == (model.target == "node"), kind


def test_a_fault_registry_refuses_what_it_lacks_and_what_a_situation_forbids() -> None:
    handlers: FaultHandlers[None, str] = FaultHandlers("test")

    @handlers.handles(NodePause, refuse=lambda f, s: "no pause today" if s == "sunday" else None)
    def pause(context: None, fault: NodePause, index: int) -> tuple[str, str]:
        return f"pause {fault.node} ({index})", "resume"

    faults = make_scenario(
        topology={"nodes": 2},
        faults=[
            {"kind": "node_pause", "node": 1, "at": 1, "duration": 1},
            {"kind": "origin_down", "at": 1, "duration": 1},
        ],
    ).faults
    assert handlers.kinds == {NodePause}
    assert handlers.unhandled(faults) == ["origin_down"]
    assert handlers.refusal(faults[:1]) is None
    assert handlers.refusal(faults, "sunday") == (
        "faults origin_down cannot be injected on the test backend; no pause today"
    )
    assert handlers.actions(None, faults[0], 0) == ("pause 1 (0)", "resume")
    with pytest.raises(ValueError, match="handled twice"):
        handlers.handles(NodePause)(pause)


def test_a_new_backend_is_one_class_plus_one_registry_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tests/unit/dict_backend.py, registered by name: the scenario and `cachelab run`
    accept it, and run_cell drives the same request stream on it as on the simulator."""
    monkeypatch.setitem(backends.REGISTRY, "dict", DICT)
    path = _yaml(tmp_path, backends=["sim", "dict"])
    results = tmp_path / "results"
    argv = ["run", str(path), "--results", str(results), "--quiet", "--no-progress"]
    assert cli.main(argv) == 0
    sim, mem = (
        json.loads((results / "t" / f"aside.{name}.s1" / "summary.json").read_text())
        for name in ("sim", "dict")
    )
    assert mem["backend"] == "dict" and mem["versions"]["dict"] == "builtin"
    for field in ("requests", "reads", "writes"):
        assert mem[field] == sim[field] > 0, field  # the same stream on both
    assert mem["lost_writes"] == 0 and mem["stale_reads"] == 0  # one thread, no races
    # every read of a key after its first miss hits (no eviction, no expiry in the run)
    assert mem["hits"] >= mem["reads"] - 100 - mem["writes"]


def test_a_new_backend_refuses_what_it_cannot_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(backends.REGISTRY, "dict", DICT)
    near = {"read": "cache-aside", "write": "invalidate", "ttl": 60}
    near["near"] = {"capacity": 10, "ttl": 5, "invalidate": "bus"}  # type: ignore[assignment]
    scenario = make_scenario(strategies={"near": near})
    with pytest.raises(CellSkipped, match="needs pubsub, which the dict backend does not offer"):
        run_cell(scenario, scenario.cells(["dict"])[0])
    faulty = make_scenario(faults=[{"kind": "node_crash", "at": 0.1, "duration": 0.1}])
    with pytest.raises(CellSkipped, match="node_crash cannot be injected on the dict backend"):
        run_cell(faulty, faulty.cells(["dict"])[0])
