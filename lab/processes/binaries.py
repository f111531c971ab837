"""Finding server executables: on PATH, or inside an installed wheel, probed once.

Each backend says how its binary reports its version (`--version` for
redis-server, `-V` for memcached); `probe` runs that once per path and
returns a `Binary` naming what it found, so tests can report and compare
the servers they ran against.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lab.processes.errors import ServerNotFound


@dataclass(frozen=True)
class Binary:
    """A server executable and what it is (``flavor``: redis, valkey, memcached, ...)."""

    path: str
    flavor: str
    version: str

    @property
    def version_tuple(self) -> tuple[int, ...]:
        """Numeric version, e.g. ``(7, 0, 15)``, for feature checks."""
        parts: list[int] = []
        for piece in self.version.split("."):
            match = re.match(r"\d+", piece)
            if match is None:
                break
            parts.append(int(match.group()))
        return tuple(parts)

    @property
    def label(self) -> str:
        """Short human label such as ``redis-7.0.15`` (used as test ids)."""
        return f"{self.flavor}-{self.version}"


@functools.lru_cache(maxsize=64)
def probe(path: str, argument: str, version: str, flavors: tuple[str, ...], kind: str) -> Binary:
    """Run ``<path> <argument>`` once per path and read its version.

    ``version`` is a regular expression whose first group is the version;
    the flavor is the first of ``flavors`` named in the output (else the last
    one); ``kind`` names the expected server in errors ("Redis/Valkey").
    """
    try:
        out = subprocess.run(
            [path, argument],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ServerNotFound(f"cannot run {path} {argument}: {exc}") from exc
    text = (out.stdout + out.stderr).strip()
    match = re.search(version, text)
    if out.returncode != 0 or match is None:
        raise ServerNotFound(f"{path} {argument} did not look like a {kind} server: {text!r}")
    lowered = text.lower()
    flavor = next((f for f in flavors if f in lowered), flavors[-1])
    return Binary(path=path, flavor=flavor, version=match.group(1))


def which(name: str, probe_path: Callable[[str], Binary]) -> Binary | None:
    """``name`` on PATH, probed with ``probe_path(path)``; None if absent or not a server."""
    path = shutil.which(name)
    if path is None:
        return None
    try:
        return probe_path(path)
    except ServerNotFound:
        return None


def platform_dir_name() -> str:
    """The ``<system>-<machine>`` sub-directory name wheels use for bundled binaries."""
    system = platform.system().lower()
    machine = platform.machine().lower()
    if machine in ("amd64", "x86_64"):
        machine = "x86_64"
    elif machine in ("arm64", "aarch64"):
        machine = "arm64" if system == "darwin" else "aarch64"
    return f"{system}-{machine}"


def in_wheel(
    package: str, subdir: str, executable: str, probe_path: Callable[[str], Binary]
) -> Binary | None:
    """``<package>/<subdir>/<platform>/<executable>`` of an installed wheel, if any.

    Only locates the package (``find_spec`` does not import it) and globs
    ``<subdir>/*/<executable>``, the preferred platform first.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    roots = list(spec.submodule_search_locations or [])
    if not roots and spec.origin:
        roots = [os.path.dirname(spec.origin)]
    for root in roots:
        bin_root = Path(root, subdir)
        preferred = bin_root / platform_dir_name() / executable
        candidates = [preferred, *sorted(bin_root.glob(f"*/{executable}"))]
        for candidate in candidates:
            if candidate.is_file() and os.access(candidate, os.X_OK):
                with contextlib.suppress(ServerNotFound):  # e.g. wrong architecture
                    return probe_path(str(candidate))
    return None
