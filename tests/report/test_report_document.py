"""REPORT.md with figures: from the API, `cachelab report -o DIR` and `cachelab bench`."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from lab.report.document import write_report
from lab.results import load_all

from .conftest import SMALL

LINK = re.compile(r"\]\(([^)\s]+)\)")


def links(markdown: Path) -> list[str]:
    return LINK.findall(markdown.read_text())


def assert_links_resolve(markdown: Path) -> list[Path]:
    targets = [markdown.parent / link for link in links(markdown)]
    assert targets, "no links in the report"
    for link, target in zip(links(markdown), targets, strict=True):
        assert not Path(link).is_absolute(), link
        assert target.is_file(), f"{markdown}: broken link {link}"
    return targets


def cachelab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lab", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_report_links_every_figure_relative_to_itself(small_results: Path, tmp_path: Path) -> None:
    out = tmp_path / "published"
    written = write_report(load_all(small_results), out)
    assert written.report == out / "REPORT.md"
    text = written.report.read_text()
    assert "## report-small" in text and "| aside | sim | 2 |" in text  # the tables stay
    targets = assert_links_resolve(written.report)
    assert {t.resolve() for t in targets} == {p.resolve() for p in written.figures}
    assert all(t.parent == out / "report-small" / "figures" for t in targets)
    # tables come before the scenario's figures
    assert text.index("| aside | sim |") < text.index("![report-small: key metrics")
    # the folder can be moved: links are relative
    moved = tmp_path / "moved"
    shutil.move(out, moved)
    assert_links_resolve(moved / "REPORT.md")


def test_report_without_figures_is_tables_only(small_results: Path, tmp_path: Path) -> None:
    written = write_report(load_all(small_results), tmp_path, figures=False)
    assert written.figures == [] and links(written.report) == []
    assert not (tmp_path / "report-small").exists()


def test_cachelab_report_on_a_folder(small_results: Path, tmp_path: Path) -> None:
    done = cachelab("report", str(small_results), "--output-dir", "site", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "| aside | sim | 2 |" in done.stdout  # the table on stdout, as before
    assert "report written to site/REPORT.md with 14 figure file(s)" in done.stderr
    assert_links_resolve(tmp_path / "site" / "REPORT.md")
    # the plain form is unchanged: tables on stdout, nothing written
    plain = cachelab("report", str(small_results), cwd=tmp_path)
    assert plain.returncode == 0 and plain.stdout == done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]
    tables = cachelab("report", str(small_results), "-o", "t", "--no-figures", cwd=tmp_path)
    assert tables.returncode == 0 and links(tmp_path / "t" / "REPORT.md") == []


def test_bench_writes_figures_by_default(tmp_path: Path) -> None:
    (tmp_path / "sc").mkdir()
    tiny = dict(SMALL, seeds=[1], duration="2s", warmup="0.5s")
    (tmp_path / "sc" / "small.yaml").write_text(yaml.safe_dump(tiny))
    done = cachelab("bench", "--scenarios", "sc", "--results", "res", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "## report-small" in done.stdout
    targets = assert_links_resolve(tmp_path / "res" / "REPORT.md")
    assert tmp_path / "res" / "report-small" / "figures" / "hit_ratio.png" in targets
    # figures live beside the runs without being mistaken for runs
    assert len(load_all(tmp_path / "res")) == 3


def test_png_only_report_links_no_svg_and_leaves_none_behind(
    small_results: Path, tmp_path: Path
) -> None:
    frame = load_all(small_results)
    both = write_report(frame, tmp_path)
    assert any(p.suffix == ".svg" for p in both.figures) and "[SVG](" in both.text
    png = write_report(frame, tmp_path, formats=("png",))
    assert png.figures and {p.suffix for p in png.figures} == {".png"}
    assert "[SVG](" not in png.text
    assert_links_resolve(png.report)
    # the SVGs drawn before are gone: none left that the PNGs no longer match
    assert not list((tmp_path / "report-small" / "figures").glob("*.svg"))
