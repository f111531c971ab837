"""Fixtures for the memcached tests: skipped with the reason where no binary exists."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lab.memcached.binaries import INSTALL_HINT, memcached_available
from lab.processes.binaries import Binary
from tests import helpers

BINARY = memcached_available()


@pytest.fixture(scope="session", autouse=True)
def _no_orphan_servers() -> Iterator[None]:
    yield from helpers.no_orphan_servers()


@pytest.fixture
def binary() -> Binary:
    if BINARY is None:
        pytest.skip(INSTALL_HINT)
    return BINARY
