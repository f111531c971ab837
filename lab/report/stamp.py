"""Figures are drawn again only when what they show changed: a stamp beside them holds
a hash of their inputs (each run's folder and the size and time of its files, the
formats, the lab's version and the report code), and the figures it produced."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import lab

STAMP = "inputs.json"


def inputs_key(paths: Sequence[str], formats: Sequence[str]) -> str:
    """A hash of everything a scenario's figures are drawn from."""
    digest = hashlib.sha256()
    digest.update(json.dumps([lab.__version__, list(formats)]).encode())
    for code in sorted(Path(__file__).parent.glob("*.py")):
        stat = code.stat()
        digest.update(f"{code.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    for path in sorted(paths):
        for file in sorted(Path(path).glob("*")):
            with contextlib.suppress(OSError):
                stat = file.stat()
                digest.update(f"{file}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def unchanged(folder: Path, key: str, formats: Sequence[str]) -> list[tuple[str, str]] | None:
    """The (name, title) of the figures in `folder` when they were drawn from the same
    inputs and are all still there; otherwise None (draw them)."""
    try:
        stamp = json.loads((folder / STAMP).read_text())
        if stamp.get("key") != key:
            return None
        figures = [(str(name), str(title)) for name, title in stamp["figures"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if all((folder / f"{name}.{fmt}").is_file() for name, _ in figures for fmt in formats):
        return figures
    return None


def record(folder: Path, key: str, figures: list[tuple[str, str]]) -> None:
    """Remember what `key`'s inputs produced (written atomically)."""
    tmp = folder / f"{STAMP}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps({"key": key, "figures": figures}))
    tmp.replace(folder / STAMP)
