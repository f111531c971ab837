"""The fidelity grid's cells (no servers): the full grid is issue 10's 128 cells, and a
sample of it is a fixed, shuffled cut that covers every axis."""

from __future__ import annotations

from lab.fidelity.grid import AXES, full_grid, sample_grid, scenario_for


def test_full_grid_is_the_issues_grid() -> None:
    cells = full_grid()
    assert len(cells) == 128 == len(set(cells))
    assert {c.value_size for c in cells} == {"100B", "1KiB", "16KiB", "mix"}


def test_sample_is_fixed_and_covers_every_axis() -> None:
    sample = sample_grid(16)
    assert sample == sample_grid(16) and len(set(sample)) == 16
    assert set(sample) <= set(full_grid())
    for axis, values in AXES.items():
        assert {getattr(c, axis) for c in sample} == set(values), axis
    assert sample_grid(200) == sample_grid(128) and len(sample_grid(200)) == 128


def test_a_cell_at_another_rate() -> None:
    from lab.fidelity.grid import FidelityCell

    scenario = scenario_for(FidelityCell("64KiB", 1, 1, 1.0, "bytes"), rate=500.0)
    assert scenario.topology.capacity_bytes == 24 * 1024 * 1024
    assert scenario.workload.arrivals.rate == 500.0
