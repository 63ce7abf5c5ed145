"""The synchronous SDK against a real `keyturn serve`: threads share one refresh."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from keyturn.client import FileTokenStore, KeyturnAuth
from tests.support.api import DEFAULT_PASSWORD
from tests.support.processes import ServerFactory

pytestmark = pytest.mark.system


class RecordingTransport(httpx.HTTPTransport):
    """Records each refresh token the SDK sends to Keyturn."""

    def __init__(self) -> None:
        super().__init__()
        self.refresh_tokens: list[str] = []
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/auth/refresh":
            with self._lock:
                self.refresh_tokens.append(json.loads(request.content)["refresh_token"])
        return super().handle_request(request)


def server_refreshes(base_url: str) -> float:
    for line in httpx.get(f"{base_url}/metrics").text.splitlines():
        if line.startswith('keyturn_refreshes_total{outcome="rotated"}'):
            return float(line.rpartition(" ")[2])
    return 0.0


def test_fifty_threads_with_an_expired_token_refresh_once(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    """50 threads hit an expired token at once: one refresh at the server, all succeed, and
    the rotated tokens survive in a 0600 file for the next process."""
    server = make_server(KEYTURN_ACCESS_TTL_SECONDS="1")
    registered = httpx.post(
        f"{server.url}/api/auth/register",
        json={"email": "ada@example.com", "password": DEFAULT_PASSWORD},
    )
    assert registered.status_code == 201
    transport = RecordingTransport()
    store = FileTokenStore(tmp_path / "tokens.json")
    auth = KeyturnAuth(
        server.url,
        email="ada@example.com",
        password=DEFAULT_PASSWORD,
        store=store,
        transport=transport,
    )
    with httpx.Client(auth=auth, base_url=server.url) as client:
        assert client.get("/api/auth/me").status_code == 200
        # The server's real clock: let the access token expire. A one-second token lives until
        # the whole second after the one it was minted in: at most two.
        time.sleep(2.1)

        with ThreadPoolExecutor(max_workers=50) as pool:
            statuses = list(pool.map(lambda _: client.get("/api/auth/me").status_code, range(50)))

    assert statuses == [200] * 50
    assert len(transport.refresh_tokens) == 1
    assert server_refreshes(server.url) == 1
    auth.close()

    # Another process with only the file (no password) carries on with the stored session.
    with KeyturnAuth(server.url, store=FileTokenStore(tmp_path / "tokens.json")) as later:
        me = httpx.get(f"{server.url}/api/auth/me", auth=later)
    assert me.status_code == 200
