"""The Redis-vs-Memcached table: capability rows come from the backends' declarations,
the section replaces itself in REPORT.md, and without servers the measured rows are
skipped with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import versus


def test_capability_rows_are_the_backends_declarations() -> None:
    rows = versus.capabilities()
    assert rows["capability: pubsub"] == {"redis": "yes", "memcached": "no"}
    assert rows["capability: nx"] == {"redis": "yes", "memcached": "yes"}
    assert rows["server-side replication"]["memcached"].startswith("no (memcached has no")
    assert rows["server-side cluster (hash slots)"]["redis"] == "yes"


def _measured() -> versus.Measured:
    measured = versus.Measured("2 cores", 8, [100, 1000], 1000, 2000)
    measured.capabilities = versus.capabilities()
    measured.hit_ratio = {"redis": 0.5, "memcached": 0.6, "memcached (simulated)": 0.61}
    measured.memory_per_key = {
        "redis": 1800.0,
        "memcached (item bytes)": 1000.0,
        "memcached (slab pages)": 1200.0,
    }
    measured.speed = {"redis, 1 client": {"throughput": 1.0, "op_p50": 0.001, "op_p99": 0.002}}
    return measured


def test_the_section_replaces_itself_in_the_report(tmp_path: Path) -> None:
    (tmp_path / "REPORT.md").write_text("# Report\n\nscenario tables\n")
    versus.write(_measured(), tmp_path)
    versus.write(_measured(), tmp_path)
    text = (tmp_path / "REPORT.md").read_text()
    assert text.startswith("# Report") and text.count(versus.SECTION) == 1
    assert "| hit ratio, 8 MiB, values 100/1000 B | 0.5000 | 0.6000 (simulated: 0.6100)" in text
    assert (tmp_path / "redis-vs-memcached" / "comparison.json").exists()


def test_without_memcached_the_measured_rows_are_skipped_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CACHELAB_MEMCACHED_BIN", "/nonexistent/memcached")
    measured = versus.measure(None, log=lambda _: None)  # type: ignore[arg-type]
    assert measured.skipped and "apt-get install memcached" in measured.skipped[0]
    assert not measured.speed and measured.capabilities
    assert "Measured rows skipped" in versus.markdown(measured)
