"""`synth`: a scenario's request stream as a trace, exact in csv, reported lossy in
oracleGeneral; checked against RequestStream itself."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lab.trace.synth import synthesize
from lab.tracefile.keymap import IdentityKeys
from lab.tracefile.readers import open_trace
from lab.tracefile.spec import TraceError, TraceSpec
from lab.workload.stream import RequestStream
from tests.helpers import make_scenario
from tests.trace.refs import RECORD, next_access

SCENARIO: dict[str, Any] = {
    "requests": 5000,
    "keyspace": {"keys": 300, "value_size": "2KiB"},
    "workload": {"mix": {"write": 0.2}, "arrivals": {"process": "poisson", "rate": "3000/s"}},
    "seeds": [4, 5],
}


def replayed(path: Path, keys: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(time, is_write, key id, size) of the trace, keys used as they are."""
    ids = IdentityKeys(keys, path)
    parts = list(open_trace(TraceSpec(path=path, keys="identity"), chunk=1000).chunks())
    return (
        np.concatenate([p.time for p in parts]),
        np.concatenate([p.write for p in parts]),
        np.concatenate([ids.map(p) for p in parts]),
        np.concatenate([p.size for p in parts]),
    )


@pytest.mark.parametrize("name", ["s.csv", "s.csv.zst"])
def test_csv_gives_back_the_stream_bit_for_bit(tmp_path: Path, name: str) -> None:
    scenario = make_scenario(**SCENARIO)
    done = synthesize(scenario, tmp_path / name, seed=5)
    expected = list(RequestStream(scenario, 5).timed(3000.0))
    assert done.requests == len(expected) == 5000 and not done.lost
    assert done.writes == sum(w for _, w, _ in expected)
    time, write, key, size = replayed(tmp_path / name, 300)
    assert time.tolist() == [t for t, _, _ in expected]  # float64 equality, not approx
    assert write.tolist() == [w for _, w, _ in expected]
    assert key.tolist() == [k for _, _, k in expected]
    assert (size == 2048).all()


def test_the_first_seed_is_the_default(tmp_path: Path) -> None:
    scenario = make_scenario(**SCENARIO)
    synthesize(scenario, tmp_path / "a.csv")
    synthesize(scenario, tmp_path / "b.csv", seed=4)
    synthesize(scenario, tmp_path / "c.csv", seed=5)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.csv").read_bytes() != (tmp_path / "c.csv").read_bytes()


def test_a_duration_cuts_where_the_client_loop_stops(tmp_path: Path) -> None:
    scenario = make_scenario(**{**SCENARIO, "requests": None, "duration": "2s"})
    done = synthesize(scenario, tmp_path / "d.csv")
    stream = RequestStream(scenario, 4).timed(3000.0)
    expected = list(itertools.takewhile(lambda r: r[0] < 2.0, stream))
    time, _, key, _ = replayed(tmp_path / "d.csv", 300)
    assert done.requests == len(expected) and 5000 < len(expected) < 7000
    assert time.tolist() == [t for t, _, _ in expected]
    assert key.tolist() == [k for _, _, k in expected]


def test_closed_loop_writes_the_order_without_times(tmp_path: Path) -> None:
    closed = {"process": "closed", "clients": 4}
    scenario = make_scenario(**{**SCENARIO, "workload": {"arrivals": closed}})
    synthesize(scenario, tmp_path / "c.csv", requests=700)
    assert (tmp_path / "c.csv").read_text().splitlines()[0] == "key,op,size"
    time, write, key, _ = replayed(tmp_path / "c.csv", 300)
    expected = list(itertools.islice(RequestStream(scenario, 4).requests(), 700))
    assert np.isnan(time).all()
    assert list(zip(write.tolist(), key.tolist(), strict=True)) == expected
    timed = make_scenario(
        **{**SCENARIO, "requests": None, "duration": "5s", "workload": {"arrivals": closed}}
    )
    with pytest.raises(TraceError, match=r"closed-loop arrivals run for a duration.*--requests N"):
        synthesize(timed, tmp_path / "new" / "x.csv")
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("name", ["s.oracleGeneral.bin", "s.oracleGeneral.bin.zst"])
def test_oracle_general_keeps_seconds_ids_and_next_access(tmp_path: Path, name: str) -> None:
    scenario = make_scenario(**SCENARIO)
    done = synthesize(scenario, tmp_path / name, seed=5)
    assert done.lost == [
        f"its {done.writes} writes read as gets (no op column)",
        "times are whole seconds",
    ]
    expected = list(RequestStream(scenario, 5).timed(3000.0))
    parts = list(open_trace(TraceSpec(path=tmp_path / name), chunk=999).chunks())
    ids = np.concatenate([p.key for p in parts]).tolist()
    assert ids == [k for _, _, k in expected]
    assert np.concatenate([p.time for p in parts]).tolist() == [
        math.floor(t) for t, _, _ in expected
    ]
    nexts = np.concatenate([p.next_access for p in parts if p.next_access is not None])
    assert nexts.tolist() == next_access(ids)
    assert not np.concatenate([p.write for p in parts]).any()


def test_oracle_general_next_access_spans_many_chunks(tmp_path: Path) -> None:
    """The backward pass links requests across its blocks of 65536 records."""
    scenario = make_scenario(**{**SCENARIO, "requests": 150_000, "keyspace": {"keys": 50_000}})
    synthesize(scenario, tmp_path / "big.bin")
    records = np.fromfile(tmp_path / "big.bin", dtype=RECORD)
    assert records["next"].tolist() == next_access(records["id"].tolist())


def test_txt_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="synth writes csv"):
        synthesize(make_scenario(**SCENARIO), tmp_path / "s.txt")
    assert list(tmp_path.iterdir()) == []
