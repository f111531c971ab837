"""The trace shipped for scenarios/trace-replay.yaml is what bench/trace_demo.py writes
(so it can be regenerated, and nobody commits a different one by accident), and small."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import zstandard

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "scenarios" / "traces" / "trace-replay.csv.zst"


def test_the_shipped_demo_trace_is_the_generators() -> None:
    spec = importlib.util.spec_from_file_location("trace_demo", ROOT / "bench" / "trace_demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shipped = zstandard.ZstdDecompressor().stream_reader(SHIPPED.read_bytes()).read()
    assert shipped.decode() == module.demo_csv()
    assert SHIPPED.stat().st_size < 300_000
