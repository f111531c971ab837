"""YCSB presets and the `latest` key chooser."""

from __future__ import annotations

import pytest

from lab.scenario import ScenarioError, parse_scenario
from lab.workload.stream import RequestStream


def _workload(**workload: object) -> dict[str, object]:
    return {"name": "y", "requests": 20_000, "workload": workload, "strategies": {"a": {}}}


def test_presets_fill_mix_and_keys_and_explicit_fields_win() -> None:
    a = parse_scenario(_workload(preset="ycsb-a")).workload
    assert (a.mix.read, a.mix.write, a.keys.distribution, a.keys.s) == (0.5, 0.5, "zipf", 0.99)
    c = parse_scenario(_workload(preset="ycsb-c", keys={"distribution": "uniform"})).workload
    assert c.mix.read == 1.0 and c.keys.distribution == "uniform"


@pytest.mark.parametrize(("preset", "why"), [("ycsb-e", "range scans"), ("ycsb-q", "unknown")])
def test_unsupported_presets_say_why(preset: str, why: str) -> None:
    with pytest.raises(ScenarioError, match=f"workload: .*{why}"):
        parse_scenario(_workload(preset=preset), "y.yaml")


def test_latest_reads_favour_recently_written_keys() -> None:
    sc = parse_scenario(_workload(preset="ycsb-d", arrivals={"process": "closed", "clients": 1}))
    recent: list[int] = []
    near, reads = 0, 0
    for is_write, key in RequestStream(sc, 1).requests():
        if is_write:
            recent = ([*recent, key])[-50:]
        elif len(recent) == 50:
            reads += 1
            near += key in recent
    # 10,000 keys: a uniform read would hit the last 50 written keys 0.5% of the time
    assert near / reads > 0.3
