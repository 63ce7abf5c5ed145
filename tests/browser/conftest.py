"""Fixtures for the browser tests: the system Chromium under Playwright, a real `keyturn serve`.

Playwright drives Debian's /usr/bin/chromium; its own browser downloads are never used.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.environment import missing_service
from tests.support.processes import KeyturnServer, ServerFactory, keyturn_environment

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = os.environ.get("KEYTURN_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium per test module."""
    if not os.access(CHROMIUM, os.X_OK):
        missing_service(f"Chromium is not installed at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_service("Playwright for Python is not installed")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start `keyturn serve` with a 3-second access token on a fresh SQLite file."""
    servers: list[KeyturnServer] = []

    def make(**variables: str) -> KeyturnServer:
        variables.setdefault("KEYTURN_DATABASE_URL", f"sqlite:///{tmp_path}/k{len(servers)}.db")
        variables.setdefault("KEYTURN_ACCESS_TTL_SECONDS", "3")
        server = KeyturnServer(cwd=tmp_path, env=keyturn_environment(**variables))
        servers.append(server)
        return server.start()

    yield make
    for server in reversed(servers):
        server.stop()


@pytest.fixture
def server(make_server: ServerFactory) -> KeyturnServer:
    return make_server()
