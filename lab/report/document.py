"""REPORT.md: the comparison tables with each scenario's figures linked below its table.

Layout of an output folder (`cachelab bench` uses `results/`; `cachelab report
--output-dir DIR` any folder):

    DIR/REPORT.md
    DIR/<scenario>/figures/<figure>.png and .svg (`cachelab bench`: .svg with --svg)

Links in REPORT.md are relative to DIR, so the folder can be moved or
published as a whole.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from lab.report.table import FigureLink, report

REPORT_NAME = "REPORT.md"


@dataclass(frozen=True)
class Written:
    """What `write_report` wrote: the markdown file, its text, and every figure file."""

    report: Path
    text: str
    figures: list[Path]


def _relative(path: Path, base: Path) -> str:
    return quote(Path(os.path.relpath(path, base)).as_posix())


def write_report(
    frame: pd.DataFrame,
    out_dir: str | Path,
    *,
    figures: bool = True,
    jobs: int | None = None,
    formats: Sequence[str] | None = None,
) -> Written:
    """Write `out_dir/REPORT.md` (atomically) and, unless `figures=False`, the figures
    in `formats` (PNG first; default PNG and SVG) on `jobs` processes (`write_figures`'
    default when None, 1 for this one alone)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    links: dict[str, list[FigureLink]] = {}
    files: list[Path] = []
    if figures and not frame.empty:
        from lab.report.figures import FORMATS, write_figures

        drawn = write_figures(frame, out, formats or FORMATS, jobs=jobs)
        for scenario, written in drawn.items():
            links[scenario] = [
                FigureLink(
                    f.title,
                    _relative(f.files["png"], out),
                    _relative(f.files["svg"], out) if "svg" in f.files else None,
                )
                for f in written
            ]
            files.extend(p for f in written for p in f.files.values())
    text = report(frame, links)
    target = out / REPORT_NAME
    tmp = target.with_name(f".{REPORT_NAME}.tmp-{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(target)
    return Written(target, text, files)
