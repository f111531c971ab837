"""Hypothesis fuzzing of `cachelab run`: valid scenario documents mutated field by field
(a hostile value, a deleted field, a typo, a repeated entry, a hostile strategy name),
damaged YAML text and raw bytes. Each case must end in a clean one-line refusal or a
run within its estimate (tests/fuzz/harness.py).

Examples are derandomized so the suite is repeatable; for a longer hunt:
    CACHELAB_FUZZ_EXAMPLES=2000 CACHELAB_FUZZ_RANDOM=1 .venv/bin/python -m pytest tests/fuzz
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.harness import Outcome, attempt
from tests.fuzz.mutations import (
    BASES,
    HOSTILE,
    delete,
    dump,
    misspell,
    paths,
    rename_strategy,
    repeat,
    replace,
)

EXAMPLES = int(os.environ.get("CACHELAB_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not os.environ.get("CACHELAB_FUZZ_RANDOM"),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

values = st.one_of(
    st.sampled_from(HOSTILE),
    st.integers(),
    st.floats(),
    st.text(max_size=200),
    st.booleans(),
    st.none(),
    st.lists(st.integers(min_value=-5, max_value=5), max_size=4),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=3),
)


def judge(data: bytes) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="cachelab-fuzz-") as tmp:
        path = Path(tmp) / "case.yaml"
        path.write_bytes(data)
        outcome = attempt(path, Path(tmp))
    assert outcome.problems() == [], (data[:2000], outcome.status, outcome.stderr[-2000:])
    return outcome


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    base = draw(st.sampled_from(BASES))
    path = draw(st.sampled_from(list(paths(base))))
    kind = draw(
        st.sampled_from(["replace", "replace", "replace", "delete", "typo", "repeat", "name"])
    )
    if kind == "replace":
        return replace(base, path, draw(values))
    if kind == "delete":
        return delete(base, path)
    if kind == "typo":
        return misspell(base, path)
    if kind == "repeat":
        return repeat(base, path)
    return rename_strategy(base, draw(st.text(min_size=0, max_size=150)))


@FUZZ
@given(mutated())
def test_mutated_documents(doc: dict[str, Any]) -> None:
    judge(dump(doc).encode("utf-8", "surrogatepass"))


@FUZZ
@given(mutated(), mutated())
def test_documents_mutated_twice(first: dict[str, Any], second: dict[str, Any]) -> None:
    # two mutations of the same base compose; of different bases, the second wins
    doc = {**first, **{k: v for k, v in second.items() if first.get(k) != v}}
    judge(dump(doc).encode("utf-8", "surrogatepass"))


@FUZZ
@given(st.sampled_from(BASES), st.data())
def test_damaged_yaml_text(base: dict[str, Any], data: st.DataObject) -> None:
    text = bytearray(dump(base).encode())
    for _ in range(data.draw(st.integers(min_value=1, max_value=8))):
        at = data.draw(st.integers(min_value=0, max_value=len(text) - 1))
        text[at] = data.draw(st.sampled_from(b"{}[]:,&*!|>'\"#-?\n\t \x00\xff0123456789"))
    judge(bytes(text))


@FUZZ
@given(st.binary(max_size=3000))
def test_raw_bytes(data: bytes) -> None:
    judge(data)


@FUZZ
@given(st.text(alphabet="{}[]:,&*!|>'\"#-? \n\tabcdeknrst0123456789.", max_size=400))
def test_yaml_shaped_text(text: str) -> None:
    judge(text.encode())
