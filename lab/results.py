"""Results on disk, and loading them back as one tidy DataFrame.

Layout: `results/<scenario>/<strategy>.<backend>.s<seed>/` holding
`scenario.yaml` (the scenario as run, with its config hash), `summary.json`,
`timeseries.csv`, `distributions.csv` (latency and staleness-age histograms)
and `staleness_curve.csv` (P(fresh | time since the key's last write)). A run
folder is written under a temporary name and renamed into place, so an
interrupted run never leaves half a result.
Reports and notebooks read results only through `load_all`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from lab.runner import RunResult
from lab.scenario import Scenario

IDENTITY = ["scenario", "strategy", "backend", "seed"]


def run_dir(root: str | Path, scenario: str, run_id: str) -> Path:
    return Path(root) / scenario / run_id


def _clean(value: Any) -> Any:
    """JSON has no NaN: undefined metrics are written as null."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def write_run(root: str | Path, scenario: Scenario, result: RunResult) -> Path:
    """Write one run's folder atomically; replaces an earlier run of the same cell."""
    final = run_dir(root, scenario.name, result.cell.run_id)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{result.cell.run_id}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        as_run = {
            "config_hash": scenario.config_hash(),
            "seed": result.cell.seed,
            "strategy": result.cell.strategy,
            "backend": result.cell.backend,
            "scenario": scenario.model_dump(mode="json"),
        }
        (tmp / "scenario.yaml").write_text(yaml.safe_dump(as_run, sort_keys=False))
        summary = _clean({**result.summary, "notes": result.notes})
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        result.timeseries.to_csv(tmp / "timeseries.csv", index=False)
        if result.distributions is not None:
            result.distributions.to_csv(tmp / "distributions.csv", index=False)
        if result.staleness_curve is not None:
            result.staleness_curve.to_csv(tmp / "staleness_curve.csv", index=False)
        if final.exists():
            old = final.parent / f".old-{result.cell.run_id}-{os.getpid()}"
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _summaries(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_file() and path.name == "summary.json":
            found.append(path)
        elif path.is_dir():
            found.extend(
                p for p in sorted(path.rglob("summary.json")) if not p.parent.name.startswith(".")
            )
    return found


def load_all(*paths: str | Path) -> pd.DataFrame:
    """Every run under `paths` (default `results/`) as one row: identity columns first,
    then every summary metric. Nested fields are flattened (`versions.simpy`)."""
    roots = [Path(p) for p in paths] or [Path("results")]
    rows = []
    for summary_path in _summaries(roots):
        data = json.loads(summary_path.read_text())
        data.pop("notes", None)
        data["path"] = str(summary_path.parent)
        rows.append(data)
    if not rows:
        return pd.DataFrame(columns=[*IDENTITY, "path"])
    frame = pd.json_normalize(rows)
    first = [c for c in IDENTITY if c in frame.columns]
    frame = frame[first + [c for c in frame.columns if c not in first]]
    # strategies in the order their scenario lists them, where the runs say so
    order = ["scenario", "strategy_index", *first[1:]] if "strategy_index" in frame else first
    return frame.sort_values(order, kind="stable").reset_index(drop=True)


def _load_per_run(name: str, paths: tuple[str | Path, ...]) -> pd.DataFrame:
    """Every run's `name` CSV, stacked, with the identity columns of its run."""
    frames = []
    for _, row in load_all(*paths).iterrows():
        file = Path(row["path"]) / name
        if not file.exists():
            continue
        frame = pd.read_csv(file)
        for column in reversed(IDENTITY):
            if column not in frame:
                frame.insert(0, column, row[column])
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=IDENTITY)
    return pd.concat(frames, ignore_index=True)


def load_timeseries(*paths: str | Path) -> pd.DataFrame:
    """Every run's timeseries (one row per interval), stacked, with identity columns."""
    return _load_per_run("timeseries.csv", paths)


def load_distributions(*paths: str | Path) -> pd.DataFrame:
    """Every run's histograms as (metric, value, count) rows: read_latency,
    write_latency, staleness_age. For CDFs: cumulative count / total per run."""
    return _load_per_run("distributions.csv", paths)


def load_staleness_curves(*paths: str | Path) -> pd.DataFrame:
    """Every run's P(fresh | time since the key's last write) table."""
    return _load_per_run("staleness_curve.csv", paths)
