"""/metrics of `keyturn serve --workers 2`: every scrape sums both workers."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.processes import ServerFactory

pytestmark = pytest.mark.system

HEALTHZ = 'keyturn_http_request_duration_seconds_count{method="GET",route="/healthz",status="200"}'


def healthz_count(base_url: str) -> float:
    # A fresh connection each time, so scrapes land on either worker.
    with httpx.Client(base_url=base_url) as client:
        for line in client.get("/metrics").text.splitlines():
            if line.startswith(HEALTHZ):
                return float(line.rpartition(" ")[2])
    return 0.0


def test_every_scrape_sums_all_workers(make_server: ServerFactory) -> None:
    server = make_server(workers=2)
    before = healthz_count(server.url)
    for _ in range(40):
        with httpx.Client(base_url=server.url) as client:
            assert client.get("/healthz").status_code == 200

    counts = {healthz_count(server.url) for _ in range(8)}

    assert counts == {before + 40}


def test_server_logs_are_json_lines(make_server: ServerFactory) -> None:
    server = make_server()
    httpx.get(f"{server.url}/healthz")
    server.stop()
    lines = [line for line in server.log_path.read_text().splitlines() if line.strip()]
    assert lines
    entries = [json.loads(line) for line in lines]
    assert {"time", "level", "logger", "message"} <= set(entries[0])
