"""A sweep's runs in a results table: which columns hold the swept values, and the cells
in the order of those values (not of their names: `capacity=1000` after `capacity=500`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd

PARAMS = "params."


def is_sweep(frame: pd.DataFrame) -> bool:
    """Whether the runs are cells of a sweep (they carry a `point`)."""
    return "point" in frame.columns and bool(frame["point"].notna().any())


def param_columns(frame: pd.DataFrame) -> list[str]:
    """The `params.<path>` columns with a value in these runs, in file order."""
    return [c for c in frame.columns if c.startswith(PARAMS) and frame[c].notna().any()]


def _sort_value(value: Any) -> tuple[int, float, str]:
    """Numbers by value, then anything else by its text."""
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def point_order(frame: pd.DataFrame) -> list[str]:
    """The sweep's cell names in the order of their swept values (first path first)."""
    if not is_sweep(frame):
        return []
    columns = param_columns(frame)
    firsts = frame.dropna(subset=["point"]).drop_duplicates("point")
    rows = [
        (tuple(_sort_value(row[c]) for c in columns), i, row["point"])
        for i, (_, row) in enumerate(firsts.iterrows())
    ]
    return [str(point) for *_, point in sorted(rows)]


def groups(frame: pd.DataFrame, keys: list[str]) -> Iterator[tuple[tuple[str, ...], pd.DataFrame]]:
    """The runs grouped by `keys` (point, strategy, backend), cells in the order of their
    values, strategies in their file order, backends by name."""
    order: dict[str, list[str]] = {k: list(dict.fromkeys(frame[k].astype(str))) for k in keys}
    if "point" in keys:
        order["point"] = point_order(frame)
    keyed = frame.assign(**{k: frame[k].astype(str) for k in keys})

    def rank(key: tuple[str, ...]) -> list[Any]:
        return [
            v if k == "backend" else (order[k].index(v) if v in order[k] else len(order[k]))
            for k, v in zip(keys, key, strict=True)
        ]

    found = {tuple(str(v) for v in key): runs for key, runs in keyed.groupby(keys, sort=False)}
    for key in sorted(found, key=rank):
        yield key, found[key]
