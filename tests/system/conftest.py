"""Fixtures for tests that run real processes: `make_server(**env)` starts `keyturn serve`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.system.processes import KeyturnServer, keyturn_environment

ServerFactory = Callable[..., KeyturnServer]


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start `keyturn serve` on a free port; every server started is stopped at the end.

    Keyword arguments are KEYTURN_* variables (light Argon2 parameters are preset); without
    KEYTURN_DATABASE_URL each server gets a fresh SQLite file. `server.url` is its base URL,
    `server.log_path` its captured output.
    """
    servers: list[KeyturnServer] = []

    def make(*, workers: int = 1, **variables: str) -> KeyturnServer:
        variables.setdefault("KEYTURN_DATABASE_URL", f"sqlite:///{tmp_path}/k{len(servers)}.db")
        env = keyturn_environment(**variables)
        server = KeyturnServer(cwd=tmp_path, env=env, workers=workers)
        servers.append(server)
        return server.start()

    yield make
    for server in reversed(servers):
        server.stop()
