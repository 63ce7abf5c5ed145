"""What `keyturn serve` promises whatever HTTP server runs under it (uvicorn by default,
granian by choice)."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.support.processes import ServerFactory

pytestmark = pytest.mark.system


@pytest.mark.parametrize(
    ("choice", "server_logger"), [(None, "uvicorn.error"), ("granian", "_granian")]
)
def test_the_server_names_no_version_trusts_no_proxy_and_logs_json_only(
    make_server: ServerFactory, choice: str | None, server_logger: str
) -> None:
    server = make_server(server=choice)
    with httpx.Client(base_url=server.url) as client:
        reply = client.get("/healthz", headers={"X-Forwarded-For": "198.51.100.9"})
    assert reply.status_code == 200
    assert not re.search(r"\d", reply.headers.get("server", ""))
    server.stop()
    entries = [json.loads(line) for line in server.log_path.read_text().splitlines() if line]
    loggers = {entry["logger"] for entry in entries}
    assert server_logger in loggers  # the server's own lines go through Keyturn's JSON logging
    assert not any(name.endswith(".access") and name != "keyturn.access" for name in loggers)
    access = [entry for entry in entries if entry["logger"] == "keyturn.access"]
    assert access
    assert {entry["client"] for entry in access} == {"127.0.0.1"}
