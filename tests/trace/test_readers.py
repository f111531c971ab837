"""The trace readers against files written independently (numpy records, the csv module)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lab.tracefile.chunk import NO_SIZE
from lab.tracefile.keymap import DenseKeys
from lab.tracefile.readers import open_trace
from lab.tracefile.source import detect_format
from lab.tracefile.spec import TraceError, TraceSpec
from tests.trace.refs import RECORD, next_access, write_csv, write_oracle, zstd_copy


def read_all(path: Path, chunk: int = 1 << 16, **spec: Any) -> dict[str, np.ndarray]:
    """Every request of the trace, chunks concatenated, keys mapped densely."""
    keys = DenseKeys(path)
    parts: dict[str, list[np.ndarray]] = {f: [] for f in ("time", "key", "size", "write", "id")}
    starts = []
    for part in open_trace(TraceSpec(path=path, **spec), chunk).chunks():
        assert len(part) <= chunk
        starts.append(part.start)
        for f in ("time", "key", "size", "write"):
            parts[f].append(getattr(part, f))
        parts["id"].append(keys.map(part))
    out = {f: np.concatenate(v) for f, v in parts.items()}
    lengths = [len(p) for p in parts["key"]]
    assert starts == list(np.cumsum([0, *lengths])[:-1])  # chunk.start counts requests
    return out


# --- oracleGeneral ---------------------------------------------------------------------------


def test_oracle_general_records_come_back_field_for_field(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 1000
    ids = rng.integers(0, 2**64 - 1, 50, dtype=np.uint64)[rng.integers(0, 50, n)]
    times = np.sort(rng.integers(0, 2**32 - 1, n))
    sizes = rng.integers(1, 2**32 - 1, n)
    path = write_oracle(tmp_path / "t.oracleGeneral.bin", times, ids, sizes)
    for chunk in (7, 1000, 4096):
        got = read_all(path, chunk)
        assert got["key"].dtype == np.uint64 and (got["key"] == ids).all()
        assert (got["time"] == times).all() and (got["size"] == sizes).all()
        assert not got["write"].any()


def test_next_access_is_read_as_libcachesim_writes_it(tmp_path: Path) -> None:
    ids = [5, 6, 5, 7, 6, 5]
    nexts = next_access(ids)
    assert nexts == [3, 5, 6, -1, -1, -1]  # 1-based record of the next request
    nexts[3] = np.iinfo(np.int64).max  # libCacheSim's reader also takes INT64_MAX as none
    path = write_oracle(tmp_path / "t.bin", [0] * 6, ids, [1] * 6, nexts)
    (part,) = open_trace(TraceSpec(path=path)).chunks()
    assert part.next_access is not None
    assert part.next_access.tolist() == [3, 5, 6, -1, -1, -1]


def test_zero_size_records_are_skipped_as_libcachesim_does_unless_kept(tmp_path: Path) -> None:
    path = write_oracle(tmp_path / "t.bin", [1, 2, 3, 4], [10, 11, 12, 13], [5, 0, 7, 0])
    skipped = list(open_trace(TraceSpec(path=path), chunk=2).chunks())
    assert [p.key.tolist() for p in skipped] == [[10], [12]]
    assert [p.where(0) for p in skipped] == ["record 1", "record 3"]
    assert [p.start for p in skipped] == [0, 1]
    kept = read_all(path, zero_size="keep")
    assert kept["key"].tolist() == [10, 11, 12, 13]


def test_zstd_oracle_general_reads_as_the_plain_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    n = 5000
    plain = write_oracle(
        tmp_path / "t.oracleGeneral", np.arange(n), rng.integers(0, 300, n), rng.integers(1, 99, n)
    )
    packed = zstd_copy(plain)
    a, b = read_all(plain, 999), read_all(packed, 999)
    for field in ("time", "key", "size", "id"):
        assert (a[field] == b[field]).all()


def test_truncated_oracle_general_names_the_record(tmp_path: Path) -> None:
    path = write_oracle(tmp_path / "t.bin", [0] * 5, [1, 2, 3, 4, 5], [1] * 5)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(TraceError, match=r"t\.bin: record 5: truncated .*14 bytes into a 24-byte"):
        open_trace(TraceSpec(path=path))
    packed = zstd_copy(path)
    reader = open_trace(TraceSpec(path=packed), chunk=2)  # a stream: found when reached
    with pytest.raises(TraceError, match=r"record 5: truncated"):
        list(reader.chunks())


def test_text_given_as_oracle_general_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "t.bin"
    path.write_text("time,key\n" * 30)
    with pytest.raises(TraceError, match=r"looks like text.*pass format csv or txt"):
        open_trace(TraceSpec(path=path))


def test_empty_missing_and_corrupt_files_are_one_line_errors(tmp_path: Path) -> None:
    empty = tmp_path / "e.bin"
    empty.write_bytes(b"")
    with pytest.raises(TraceError, match="empty"):
        open_trace(TraceSpec(path=empty))
    with pytest.raises(TraceError, match="no such trace file"):
        open_trace(TraceSpec(path=tmp_path / "missing.csv"))
    corrupt = tmp_path / "c.bin.zst"
    corrupt.write_bytes(b"\x00\x01 certainly not zstd" * 10)
    with pytest.raises(TraceError, match="not a valid zstd stream"):
        open_trace(TraceSpec(path=corrupt))


# --- csv -------------------------------------------------------------------------------------


def test_csv_columns_by_name_and_ops_to_reads_and_writes(tmp_path: Path) -> None:
    rows = [
        (0.5, "GET", "user:1", 100, "x"),
        (1.25, "set", "user:2", 200, "x"),
        (2.0, "gets", "user:1", 100, "x"),
        (3.0, "delete", "user:2", 0, "x"),
        (4.0, "Incr", "n", 8, "x"),
    ]
    path = write_csv(tmp_path / "t.csv", ["ts", "operation", "k", "bytes", "other"], rows)
    got = read_all(path, columns={"time": "ts", "key": "k", "op": "operation", "size": "bytes"})
    assert got["time"].tolist() == [0.5, 1.25, 2.0, 3.0, 4.0]
    assert got["write"].tolist() == [False, True, False, True, True]
    assert got["size"].tolist() == [100, 200, 100, 0, 8]  # csv keeps size 0 (a delete)
    assert got["id"].tolist() == [0, 1, 0, 1, 2]


def test_csv_default_column_names_and_optional_fields(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", ["key", "junk"], [("a", 1), ("b", 2), ("a", 3)])
    reader = open_trace(TraceSpec(path=path))
    assert (reader.has_time, reader.has_size, reader.has_ops) == (False, False, False)
    got = read_all(path)
    assert np.isnan(got["time"]).all() and (got["size"] == NO_SIZE).all()
    assert got["id"].tolist() == [0, 1, 0] and not got["write"].any()


def test_csv_without_header_takes_one_based_positions(tmp_path: Path) -> None:
    # Twitter's cache traces: timestamp, key, key size, value size, client, op, ttl
    rows = [(10, "k1", 5, 100, 1, "get", 0), (11, "k2", 5, 50, 1, "add", 0)]
    path = write_csv(tmp_path / "twr.csv", None, rows)
    got = read_all(path, header=False, columns={"time": 1, "key": 2, "size": 4, "op": 6})
    assert got["time"].tolist() == [10.0, 11.0] and got["size"].tolist() == [100, 50]
    assert got["write"].tolist() == [False, True]


def test_csv_time_units_and_full_precision(tmp_path: Path) -> None:
    times = [0.1, 1 / 3, 12345.678901234567, 2.5e-7]
    path = write_csv(
        tmp_path / "t.csv", ["time", "key"], [(repr(t), i) for i, t in enumerate(times)]
    )
    assert read_all(path)["time"].tolist() == times  # bit for bit
    ms = write_csv(tmp_path / "ms.csv", ["time", "key"], [(1500, "a"), (3, "b")])
    assert read_all(ms, time_unit="ms")["time"].tolist() == [1.5, 0.003]


def test_csv_ops_can_be_added_and_remapped(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", ["key", "op"], [("a", "2a"), ("b", "28"), ("c", "get")])
    got = read_all(path, ops={"2A": "write", "28": "read", "get": "write"})
    assert got["write"].tolist() == [True, False, True]


def test_csv_unknown_op_names_the_line_and_the_fix(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", ["key", "op"], [("a", "get")] * 5 + [("b", "scan")])
    with pytest.raises(TraceError) as error:
        read_all(path, chunk=4)
    message = str(error.value)
    assert message.startswith(f"{path}: line 7: unknown operation 'scan'; map it with ops scan=")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("rows", "spec", "expected"),
    [
        (
            [("a", "x")],
            {"columns": {"key": "id"}},
            r"no column named 'id' \(for key\).*columns: k, v",
        ),
        ([("a", "x")], {}, r"no column named 'key' in the header \(columns: k, v\)"),
        (
            [("a", "x")],
            {"columns": {"key": 3}, "header": False},
            r"column 3 for key does not exist",
        ),
    ],
)
def test_csv_missing_columns_are_named(
    tmp_path: Path, rows: list[tuple[str, str]], spec: dict[str, Any], expected: str
) -> None:
    path = write_csv(tmp_path / "t.csv", ["k", "v"], rows)
    with pytest.raises(TraceError, match=expected):
        open_trace(TraceSpec(path=path, **spec))


def test_csv_bad_values_name_their_line(tmp_path: Path) -> None:
    bad_time = write_csv(tmp_path / "a.csv", ["time", "key"], [(1, "a"), ("soon", "b")])
    with pytest.raises(TraceError, match=r"line 3: time 'soon' is not a number"):
        read_all(bad_time)
    bad_size = write_csv(tmp_path / "b.csv", ["key", "size"], [("a", 1), ("b", -4)])
    with pytest.raises(TraceError, match=r"line 3: size '-4' is not a whole number"):
        read_all(bad_size)
    ragged = tmp_path / "c.csv"
    ragged.write_text("key,size\na,1\nb,2,3\n")
    with pytest.raises(TraceError, match=r"line 3: expected 2 fields, saw 3"):
        read_all(ragged)
    blank = tmp_path / "d.csv"
    blank.write_text("key,size\na,1\n\nb,2\n")
    with pytest.raises(TraceError, match=r"line 3: empty key"):
        read_all(blank)


def test_binary_given_as_csv_is_refused(tmp_path: Path) -> None:
    records = write_oracle(tmp_path / "t.bin", [0, 1], [1, 2], [3, 4])
    path = tmp_path / "t.csv"
    path.write_bytes(records.read_bytes())
    with pytest.raises(TraceError, match=r"looks binary.*format oracleGeneral"):
        open_trace(TraceSpec(path=path))


def test_zstd_csv_reads_as_the_plain_file(tmp_path: Path) -> None:
    rows = [(i * 0.1, f"k{i % 7}", "set" if i % 3 == 0 else "get", i) for i in range(3000)]
    plain = write_csv(tmp_path / "t.csv", ["time", "key", "op", "size"], rows)
    a, b = read_all(plain, 500), read_all(zstd_copy(plain), 500)
    for field in ("time", "size", "write", "id"):
        assert (a[field] == b[field]).all()


# --- txt -------------------------------------------------------------------------------------


def test_txt_one_key_per_line(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("a\nb\n\n  a  \nc\r\n")
    parts = list(open_trace(TraceSpec(path=path), chunk=2).chunks())
    assert [p.key.tolist() for p in parts] == [["a", "b"], ["a"], ["c"]]
    assert [p.where(0) for p in parts] == ["line 1", "line 4", "line 5"]  # blank line 3 skipped
    got = read_all(path)
    assert got["id"].tolist() == [0, 1, 0, 2]
    assert np.isnan(got["time"]).all() and (got["size"] == NO_SIZE).all()
    assert (read_all(zstd_copy(path))["id"] == got["id"]).all()


def test_binary_given_as_txt_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes(np.zeros(3, dtype=RECORD).tobytes())
    with pytest.raises(TraceError, match="looks binary"):
        open_trace(TraceSpec(path=path))


def test_the_same_requests_in_every_format_map_to_the_same_ids(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    ids = rng.integers(10**6, 10**7, 200)[rng.integers(0, 200, 4000)]
    oracle = write_oracle(tmp_path / "t.bin", np.zeros(ids.size, dtype=int), ids, np.ones(ids.size))
    csv_path = write_csv(tmp_path / "t.csv", ["key"], [(int(i),) for i in ids])
    txt = tmp_path / "t.txt"
    txt.write_text("".join(f"{i}\n" for i in ids))
    expected = read_all(oracle)["id"]
    assert (read_all(csv_path, 333)["id"] == expected).all()
    assert (read_all(txt, 777)["id"] == expected).all()


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("w68.oracleGeneral.bin.zst", "oracleGeneral"),
        ("x.oracleGeneral", "oracleGeneral"),
        ("x.bin", "oracleGeneral"),
        ("x.csv.zst", "csv"),
        ("X.CSV", "csv"),
        ("x.txt.zst", "txt"),
    ],
)
def test_the_format_comes_from_the_file_name(name: str, fmt: str) -> None:
    assert detect_format(Path(name)) == fmt


def test_an_unknown_file_name_asks_for_the_format() -> None:
    with pytest.raises(TraceError, match=r"x\.dat: cannot tell the trace format.*pass the format"):
        detect_format(Path("x.dat"))
