"""The regression corpus (tests/fuzz/corpus, written by make_corpus.py): the nasty cases
of issue 16 and a fixed sample of generated mutations. Every file ends in a clean
one-line refusal naming the field EXPECTED.tsv records, or in a run within its
estimate; never a traceback or a hang."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.bounded_yaml import MAX_BYTES
from tests.fuzz.harness import attempt
from tests.fuzz.make_corpus import CORPUS, EXPECTED, SMALL, field_of

EXPECTATIONS = dict(
    line.split("\t", 1) for line in EXPECTED.read_text().splitlines() if line.strip()
)


def test_the_corpus_is_large_and_recorded() -> None:
    files = sorted(p.name for p in CORPUS.iterdir())
    assert files == sorted(EXPECTATIONS)
    refusals = [name for name, what in EXPECTATIONS.items() if what.startswith("refuse")]
    assert len(refusals) >= 150
    assert any(what == "run" for what in EXPECTATIONS.values())


@pytest.mark.parametrize("name", sorted(EXPECTATIONS))
def test_each_file_is_refused_in_one_line_or_runs_within_its_estimate(
    name: str, tmp_path: Path
) -> None:
    path = CORPUS / name
    outcome = attempt(path, tmp_path)
    assert outcome.problems() == []
    if outcome.status == 0:
        assert EXPECTATIONS[name] == "run"
    else:
        assert EXPECTATIONS[name] == "refuse " + field_of(outcome.stderr.split(str(path), 1)[1])


def test_a_file_over_the_size_bound(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(SMALL + "# " + "x" * MAX_BYTES + "\n")
    outcome = attempt(path, tmp_path)
    assert outcome.problems() == [] and outcome.status == 2
    assert "larger than 256 KiB" in outcome.stderr
