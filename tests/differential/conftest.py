"""Differential tests start real servers: none may outlive the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lab.processes import ServerNotFound, leaked_processes, live_servers, stop_all
from lab.redis.binaries import ServerBinary, find_server_binary


@pytest.fixture(scope="session", autouse=True)
def _no_orphan_servers() -> Iterator[None]:
    yield
    left_running = live_servers()
    stop_all()
    assert not leaked_processes(), "server processes still alive after stop_all()"
    assert not left_running, f"tests did not stop these servers: {left_running}"


@pytest.fixture
def default_binary() -> ServerBinary:
    try:
        return find_server_binary()
    except ServerNotFound as exc:
        pytest.skip(str(exc))
