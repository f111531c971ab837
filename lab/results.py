"""Results on disk, and loading them back as one tidy DataFrame.

Layout: `results/<scenario>/<strategy>.<backend>.s<seed>/` (in a sweep,
`results/<scenario>/<cell>/<strategy>.<backend>.s<seed>/`) holding
`scenario.yaml` (the scenario as run, with its config hash), `summary.json`,
`timeseries.csv`, `distributions.csv` (latency and staleness-age histograms)
and `staleness_curve.csv` (P(fresh | time since the key's last write)). A run
folder is written under a temporary name and renamed into place, so an
interrupted run never leaves half a result.
Reports and notebooks read results only through `load_all`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from lab.names import check_name
from lab.runner import RunResult
from lab.scenario import Cell, Scenario

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


def _unique_suffix() -> str:
    """Names no other writer (another process, another thread) can pick: pid and random."""
    return f"{os.getpid()}-{uuid.uuid4().hex[:12]}"


def _sweep_abandoned(folder: Path) -> None:
    """Remove `.tmp-`/`.old-` folders left by writers that died mid-write (SIGKILL): their
    pid, in the name, is no longer running."""
    for leftover in folder.glob(".[to][ml][pd]-*"):
        match = re.search(r"-(\d+)-[0-9a-f]{12}$", leftover.name)
        if match is None or _alive(int(match.group(1))):
            continue
        shutil.rmtree(leftover, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_files(folder: Path, scenario: Scenario, result: RunResult) -> None:
    point = {"point": result.cell.point, "params": scenario.params} if result.cell.point else {}
    as_run = {
        "config_hash": scenario.config_hash(),
        "seed": result.cell.seed,
        "strategy": result.cell.strategy,
        "backend": result.cell.backend,
        **point,
        "scenario": scenario.as_run(),
    }
    (folder / "scenario.yaml").write_text(yaml.safe_dump(as_run, sort_keys=False))
    summary = _clean({**result.summary, "notes": result.notes})
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    result.timeseries.to_csv(folder / "timeseries.csv", index=False)
    if result.distributions is not None:
        result.distributions.to_csv(folder / "distributions.csv", index=False)
    if result.staleness_curve is not None:
        result.staleness_curve.to_csv(folder / "staleness_curve.csv", index=False)


def _move_into_place(tmp: Path, final: Path) -> None:
    """Rename the finished folder `tmp` to `final`, moving an earlier run of the same cell
    out of the way first. Other writers may be doing the same at the same moment: the
    last rename wins, and nobody fails because someone else moved a folder first."""
    for _ in range(100):
        try:
            tmp.rename(final)  # atomic; refused while `final` exists and is not empty
            return
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR):
                raise
        old = final.with_name(f".old-{final.name}-{_unique_suffix()}")
        with contextlib.suppress(FileNotFoundError):  # another writer moved it already
            final.rename(old)
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:  # a stray file where the run's folder goes
            old.unlink(missing_ok=True)
    raise OSError(errno.EBUSY, f"{final}: other writers kept replacing it")


def write_run(root: str | Path, scenario: Scenario, result: RunResult) -> Path:
    """Write one run's folder atomically; replaces an earlier run of the same cell. Safe
    with other processes writing the same results folder at the same time."""
    final = run_dir(root, scenario.name, result.cell.folder)
    final.parent.mkdir(parents=True, exist_ok=True)
    _sweep_abandoned(final.parent)
    tmp = final.parent / f".tmp-{result.cell.run_id}-{_unique_suffix()}"
    tmp.mkdir()
    try:
        _write_files(tmp, scenario, result)
        _move_into_place(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def finished_run(root: str | Path, scenario: Scenario, cell: Cell) -> Path | None:
    """The folder of a finished run of `cell` made from the same configuration (config
    hash, lab version) as `scenario` now, or None: a run there may be reused."""
    import lab

    folder = run_dir(root, scenario.name, cell.folder)
    if not (folder / "summary.json").is_file():
        return None
    data = _read_summary(folder / "summary.json")
    same = data is not None and all(
        data.get(k) == v
        for k, v in (
            ("config_hash", scenario.config_hash()),
            ("lab_version", lab.__version__),
            ("strategy", cell.strategy),
            ("backend", cell.backend),
            ("seed", cell.seed),
            ("point", cell.point or None),
        )
    )
    return folder if same else None


class CorruptResult(UserWarning):
    """A results file that cannot be read; it is skipped, and named in the warning."""


def _summaries(paths: list[Path]) -> list[tuple[Path, Path]]:
    """(root as given, summary file) of every run under `paths`, each file once."""
    found: list[tuple[Path, Path]] = []
    seen: set[Path] = set()
    for root in paths:
        if root.is_file() and root.name == "summary.json":
            files = [root]
        elif root.is_dir():
            files = [
                p for p in sorted(root.rglob("summary.json")) if not p.parent.name.startswith(".")
            ]
        else:
            files = []
        for file in files:
            real = file.resolve()
            if real not in seen:  # the same run reached through two of the paths
                seen.add(real)
                found.append((root, file))
    return found


_IDENTITY_TYPES = {"scenario": str, "strategy": str, "backend": str, "seed": int}


MAX_SUMMARY_BYTES = 16 * 1024**2
"""A run's summary is a few kilobytes; anything this large is not one."""


def _read_summary(path: Path) -> dict[str, Any] | None:
    """A summary as a dict, or None after a one-line CorruptResult warning naming it.
    Its names are checked as a scenario's are: reports turn them into paths."""
    try:
        if path.stat().st_size > MAX_SUMMARY_BYTES:
            warnings.warn(f"{path}: larger than 16 MiB; skipped", CorruptResult, stacklevel=3)
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        problem = exc.strerror if isinstance(exc, OSError) else str(exc).split(":")[0]
        warnings.warn(f"{path}: unreadable ({problem}); skipped", CorruptResult, stacklevel=3)
        return None
    if not isinstance(data, dict):
        warnings.warn(f"{path}: not a JSON object; skipped", CorruptResult, stacklevel=3)
        return None
    for name, kind in _IDENTITY_TYPES.items():
        value = data.get(name)
        problem = None
        if not isinstance(value, kind) or isinstance(value, bool):
            problem = f"{name} is missing or not a {kind.__name__}"
        elif isinstance(value, str):
            try:
                check_name(value)
            except ValueError as exc:
                problem = f"{name}: {exc}"
        if problem is not None:
            warnings.warn(f"{path}: {problem}; skipped", CorruptResult, stacklevel=3)
            return None
    return data if _point_ok(path, data) else None


def _point_ok(path: Path, data: dict[str, Any]) -> bool:
    """A sweep point's name becomes a folder too: checked like the others."""
    point = data.get("point")
    if point is None:
        return True
    try:
        if not isinstance(point, str):
            raise ValueError("not a string")
        check_name(point)
    except ValueError as exc:
        warnings.warn(f"{path}: point: {exc}; skipped", CorruptResult, stacklevel=4)
        return False
    return True


def _label_sources(rows: list[dict[str, Any]]) -> None:
    """Runs of one scenario found under different folders are kept apart when they could
    be confused: the same cell in two folders (a before/after comparison, or a copy), or
    different configurations under one name. Their strategy is labelled with the folder,
    so no table or figure averages a run with its copy or with another experiment. (The
    same configuration split over folders by seed is merged: seeds are repetitions.)"""
    roots: dict[tuple[Any, ...], set[str]] = {}
    hashes: dict[Any, set[Any]] = {}
    sources: dict[Any, set[str]] = {}
    for row in rows:
        key = (row["scenario"], row.get("point"), row["strategy"], row["backend"], row["seed"])
        roots.setdefault(key, set()).add(row["source"])
        # a sweep's cells differ in configuration by design: compare each cell's own
        hashes.setdefault((row["scenario"], row.get("point")), set()).add(row.get("config_hash"))
        sources.setdefault(row["scenario"], set()).add(row["source"])
    clashing = {key[0] for key, found in roots.items() if len(found) > 1}
    clashing |= {n for (n, _), found in hashes.items() if len(found) > 1 and len(sources[n]) > 1}
    for row in rows:
        if row["scenario"] in clashing:
            row["strategy"] = f"{row['strategy']} [{row['source']}]"


def load_all(*paths: str | Path) -> pd.DataFrame:
    """Every run under `paths` (default `results/`) as one row: identity columns first,
    then every summary metric. Nested fields are flattened (`versions.simpy`). `source`
    is the path the run was found under; when the same cell is found under several,
    its strategy is labelled `<strategy> [<source>]`. A summary that cannot be read is
    skipped with a CorruptResult warning naming it."""
    roots = [Path(p) for p in paths] or [Path("results")]
    rows = []
    for root, summary_path in _summaries(roots):
        data = _read_summary(summary_path)
        if data is None:
            continue
        data.pop("notes", None)
        data["path"] = str(summary_path.parent)
        data["source"] = str(root)
        rows.append(data)
    if not rows:
        return pd.DataFrame(columns=[*IDENTITY, "path"])
    _label_sources(rows)
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
        try:
            frame = pd.read_csv(file)
        except (OSError, UnicodeDecodeError, ValueError) as exc:  # pandas' parser errors too
            problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            warnings.warn(f"{file}: unreadable ({problem}); skipped", CorruptResult, stacklevel=3)
            continue
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
