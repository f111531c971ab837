"""`cachelab fidelity --quick`: the grid's cut on the simulator and real servers, its
table, figure and REPORT.md section (real servers; the default binary only)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lab.cli import main
from lab.fidelity.report import BEGIN, END, queued, update_report
from lab.redis.binaries import ServerBinary


def test_fidelity_quick_cut(tmp_path: Path, default_binary: ServerBinary) -> None:
    report = tmp_path / "REPORT.md"
    report.write_text("# cachelab report\n\n## some scenario\n\nkept\n")
    assert main(["fidelity", "--quick", "--results", str(tmp_path),
                 "--server", default_binary.flavor, "--sim-draws", "3"]) == 0  # fmt: skip
    out = tmp_path / "fidelity"
    rows = pd.read_csv(out / "fidelity.csv")
    assert len(rows) == 3 and set(rows["server"]) == {default_binary.label}
    # the simulator's side: the mean over 3 draws of its own randomness, and their spread
    assert (rows["sim_draws"] == 3).all() and (rows["stale_sim_draw_sd"] >= 0).all()
    assert (rows["errors_real"] == 0).all() and (rows["errors_sim"] == 0).all()
    assert (rows["cache_errors_real"] == 0).all()
    # read-only: the hit ratio depends on the request order only (within 1 point); with
    # writes, also on how long a miss's fill is in flight (every read of an invalidated
    # hot key misses until it lands), which a loaded machine stretches: 1-5 points lower
    # (in bytes: the mix's few large values make the hit ratio swing with which keys
    # are held, so within 3 points; one size at a byte budget is asserted to 1 point in
    # test_capacity.py::test_byte_budget_holds_the_simulated_keys)
    # A cell whose real run queued in its own client (median read 20 ms above the
    # simulator's, `lab.fidelity.report.queued`) did not run the cell's workload: at a
    # load average of 7 the writes cell read 6.55 points low so. It is not judged on its
    # hit ratio; at least the read-only cell in keys always is (nothing waits there).
    read_only = rows["writes"] == 0
    in_keys = rows["capacity"].str.endswith("keys")
    judged = ~queued(rows) | (read_only & in_keys)
    assert (rows[judged & read_only & in_keys]["hit_diff_points"].abs() <= 1.0).all(), rows
    assert (rows[judged & read_only]["hit_diff_points"].abs() <= 3.0).all(), rows
    assert (rows[judged]["hit_diff_points"].abs() <= 6.0).all(), rows
    held = rows[in_keys]  # in bytes: each backend's own bytes
    assert ((held["keys_real"] - held["keys_sim"]).abs() <= 0.01 * held["keys_sim"]).all()
    for fmt in ("png", "svg"):
        assert (out / "figures" / f"fidelity.{fmt}").stat().st_size > 0
    text = report.read_text()
    assert "kept" in text and text.count(BEGIN) == 1 and text.count(END) == 1
    assert "fidelity/figures/fidelity.png" in text


def test_report_section_replaced_not_repeated(tmp_path: Path) -> None:
    report = tmp_path / "REPORT.md"
    update_report(report, "first\n")
    report.write_text(report.read_text() + "\n## after\n")
    update_report(report, "second\n")
    text = report.read_text()
    assert "first" not in text and "second" in text and "## after" in text
    assert text.count(BEGIN) == 1
    assert not list(tmp_path.glob(".*tmp*"))  # nothing half-written left behind


def test_unknown_server_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["fidelity", "--server", "nosuch", "--results", str(tmp_path)])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--server" in err
    assert not list(tmp_path.iterdir())  # nothing written


def test_sim_draws_below_one_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fidelity", "--quick", "--sim-draws", "0", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--sim-draws" in err
    assert not list(tmp_path.iterdir())  # nothing written
