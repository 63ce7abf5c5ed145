"""The benchmark waits out what a stopped load left running in the server (Server.wait_idle)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
from bench.server import Server

pytestmark = [pytest.mark.system, pytest.mark.serial]

BUSY_THEN_IDLE = """
import time
end = time.monotonic() + {busy}
while time.monotonic() < end:
    pass
time.sleep(60)
"""
StartServer = Callable[[float], Server]


@pytest.fixture
def server_of() -> Iterator[StartServer]:
    started: list[Server] = []

    def start(busy_seconds: float) -> Server:
        server = Server(database_url=None, cores=None)
        server.process = subprocess.Popen(  # type: ignore[assignment]
            [sys.executable, "-c", BUSY_THEN_IDLE.format(busy=busy_seconds)]
        )
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def test_wait_idle_returns_once_the_server_stops_working(server_of: StartServer) -> None:
    """A process that computes for 1.5 s is waited for until it is done, not longer."""
    waited = server_of(1.5).wait_idle(timeout=20)

    assert 1.0 <= waited <= 4.0


def test_wait_idle_costs_one_window_on_an_idle_server(server_of: StartServer) -> None:
    """A server with nothing to do is let go after a single measuring window."""
    server = server_of(0)
    server.wait_idle(timeout=5)  # the interpreter's own start-up

    assert server.wait_idle(timeout=5) < 1.0
