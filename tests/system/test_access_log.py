"""The access log of a real `keyturn serve`: JSON lines on its standard error."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.api import DEFAULT_PASSWORD
from tests.support.processes import ServerFactory

pytestmark = pytest.mark.system


def access_lines(text: str) -> list[dict[str, object]]:
    entries = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [entry for entry in entries if entry["logger"] == "keyturn.access"]


def test_the_server_logs_each_request_once_without_its_tokens(
    make_server: ServerFactory,
) -> None:
    server = make_server()
    account = {"email": "ada@example.com", "password": DEFAULT_PASSWORD}
    with httpx.Client(base_url=server.url) as client:
        assert client.post("/api/auth/register", json=account).status_code == 201
        tokens = client.post("/api/auth/login", json=account).json()
        me = client.get(
            "/api/auth/me",
            params={"access_token": tokens["access_token"]},
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
        )
    server.stop()
    log = server.log_path.read_text()

    # The start-up wait polls /healthz: those lines are there too.
    lines = [line for line in access_lines(log) if line["path"] != "/healthz"]
    assert [(line["method"], line["path"], line["status"]) for line in lines] == [
        ("POST", "/api/auth/register", 201),
        ("POST", "/api/auth/login", 200),
        ("GET", "/api/auth/me", 200),
    ]
    assert lines[-1]["request_id"] == me.headers["x-request-id"]
    assert lines[-1]["client"] == "127.0.0.1"
    for secret in (tokens["access_token"], tokens["refresh_token"], DEFAULT_PASSWORD):
        assert secret not in log


def test_the_access_log_is_off_with_the_setting(make_server: ServerFactory) -> None:
    server = make_server(KEYTURN_ACCESS_LOG="false")
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    server.stop()
    assert access_lines(server.log_path.read_text()) == []
