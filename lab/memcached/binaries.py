"""Which memcached the lab runs: ``CACHELAB_MEMCACHED_BIN``, else ``memcached`` on PATH.

Debian ships it as package ``memcached`` (`.ci/run` installs it); without a
binary, memcached cells are skipped with the reason `find_memcached` gives.
"""

from __future__ import annotations

import os
import shutil
from typing import Final

from lab.processes.binaries import Binary, probe, which
from lab.processes.errors import ServerNotFound

INSTALL_HINT: Final = (
    "no memcached binary found: install it (`apt-get install memcached`) or point "
    "CACHELAB_MEMCACHED_BIN at a memcached executable"
)


def probe_memcached(path: str) -> Binary:
    """``<path> -V`` prints ``memcached 1.6.18``."""
    return probe(path, "-V", r"memcached (\S+)", ("memcached",), "memcached")


def find_memcached() -> Binary:
    """The memcached executable to run; ServerNotFound (with the install hint) if none."""
    override = os.environ.get("CACHELAB_MEMCACHED_BIN", "").strip()
    if override:
        path = shutil.which(override)
        if path is None:
            raise ServerNotFound(
                f"CACHELAB_MEMCACHED_BIN={override!r} is not executable; {INSTALL_HINT}"
            )
        return probe_memcached(path)
    found = which("memcached", probe_memcached)
    if found is None:
        raise ServerNotFound(INSTALL_HINT)
    return found


def memcached_available() -> Binary | None:
    """The binary, or None (tests skip with INSTALL_HINT)."""
    try:
        return find_memcached()
    except ServerNotFound:
        return None
