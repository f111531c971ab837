"""Every notebook runs top to bottom on a fresh clone, fast, and is stored without outputs."""

from __future__ import annotations

import re
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
BUDGET = 120.0  # seconds, for the whole notebook


def code_cells(path: Path) -> list[nbformat.NotebookNode]:
    nb = nbformat.read(path, as_version=4)
    return [cell for cell in nb.cells if cell.cell_type == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=BUDGET,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},  # run where Jupyter would
    )
    start = time.monotonic()
    client.execute()  # raises CellExecutionError, with the traceback, if a cell fails
    assert time.monotonic() - start < BUDGET
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    dirty = [
        i
        for i, cell in enumerate(code_cells(path))
        if cell.get("outputs") or cell.get("execution_count") is not None
    ]
    assert dirty == [], f"run: .venv/bin/python -m tests.notebooks.strip {path.name}"


ABSOLUTE = re.compile(r"""["'](/(home|Users|work|tmp|root)\b|[A-Za-z]:\\)""")
RAW_READS = re.compile(r"summary\.json|timeseries\.csv|read_csv|json\.load")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_no_absolute_paths_and_reads_through_lab_results(path: Path) -> None:
    for cell in code_cells(path):
        assert not ABSOLUTE.search(cell.source), cell.source
        assert not RAW_READS.search(cell.source), "read results through lab.results"
