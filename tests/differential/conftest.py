"""Differential tests start real servers: none may outlive the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lab.real import servers as srv


@pytest.fixture(scope="session", autouse=True)
def _no_orphan_servers() -> Iterator[None]:
    yield
    left_running = srv.live_servers()
    srv.stop_all()
    assert not srv.leaked_processes(), "server processes still alive after stop_all()"
    assert not left_running, f"tests did not stop these servers: {left_running}"


@pytest.fixture
def default_binary() -> srv.ServerBinary:
    try:
        return srv.find_server_binary()
    except srv.ServerNotFound as exc:
        pytest.skip(str(exc))
