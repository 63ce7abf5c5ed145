"""Fixtures for tests that run real processes: `make_server(**env)` starts `keyturn serve`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from keyturn.storage.db import normalize_database_url
from tests.support.environment import missing_service
from tests.support.instances import REDIS_SERVER, RedisServer, TcpProxy
from tests.support.processes import KeyturnServer, ServerFactory, keyturn_environment


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start `keyturn serve` on a free port; every server started is stopped at the end.

    Keyword arguments are KEYTURN_* variables (light Argon2 parameters are preset); without
    KEYTURN_DATABASE_URL each server gets a fresh SQLite file. `server.url` is its base URL,
    `server.log_path` its captured output.
    """
    servers: list[KeyturnServer] = []

    def make(*, workers: int = 1, server: str | None = None, **variables: str) -> KeyturnServer:
        variables.setdefault("KEYTURN_DATABASE_URL", f"sqlite:///{tmp_path}/k{len(servers)}.db")
        env = keyturn_environment(**variables)
        server_process = KeyturnServer(cwd=tmp_path, env=env, workers=workers, server=server)
        servers.append(server_process)
        return server_process.start()

    yield make
    for server in reversed(servers):
        server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own on a free port (no persistence), to kill and restart."""
    if not Path(REDIS_SERVER).exists():
        missing_service(f"redis-server is not installed at {REDIS_SERVER}")
    server = RedisServer(tmp_path).start()
    yield server
    server.kill()


@pytest.fixture
def database_proxy(postgres_url: str) -> Iterator[tuple[TcpProxy, str]]:
    """A TCP proxy in front of this test's fresh PostgreSQL database, and the database URL
    through it: `proxy.cut()` takes the database away, `proxy.restore()` brings it back."""
    url = make_url(normalize_database_url(postgres_url))
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432)).start()
    through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    yield proxy, through
    proxy.cut()
