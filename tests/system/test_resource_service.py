"""Keyturn and a separate service protected by keyturn.verify, as two real processes."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.api import DEFAULT_PASSWORD, bearer
from tests.support.processes import ServerFactory, free_port, keyturn_environment

pytestmark = pytest.mark.system

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "resource_service"
ServiceFactory = Callable[..., str]


@pytest.fixture
def make_resource_service(tmp_path: Path) -> Iterator[ServiceFactory]:
    """Start examples/resource_service under uvicorn; returns its base URL."""
    processes: list[subprocess.Popen[bytes]] = []

    def make(**variables: str) -> str:
        port = free_port()
        with (tmp_path / f"resource-{port}.log").open("wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "service:app",
                    "--app-dir",
                    str(EXAMPLE),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
                env=keyturn_environment(**variables),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError((tmp_path / f"resource-{port}.log").read_text())
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the resource service did not start")

    yield make
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


def log_in(keyturn_url: str) -> dict[str, str]:
    httpx.post(
        f"{keyturn_url}/api/auth/register",
        json={"email": "ada@example.com", "password": DEFAULT_PASSWORD},
    )
    response = httpx.post(
        f"{keyturn_url}/api/auth/login",
        json={"email": "ada@example.com", "password": DEFAULT_PASSWORD},
    )
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


def notes(service_url: str, token: str) -> tuple[int, str]:
    response = httpx.get(f"{service_url}/notes", headers=bearer(token))
    return response.status_code, response.json().get("error", "")


@pytest.mark.redis
def test_logout_reaches_the_resource_service_at_once(
    make_server: ServerFactory, make_resource_service: ServiceFactory, redis_url: str
) -> None:
    """With Keyturn's Redis, the service accepts a token, then refuses it right after logout;
    and nothing secret reaches Keyturn's logs."""
    keyturn = make_server(KEYTURN_REDIS_URL=redis_url, KEYTURN_LOG_LEVEL="DEBUG")
    service = make_resource_service(KEYTURN_ISSUER=keyturn.url, KEYTURN_REDIS_URL=redis_url)
    tokens = log_in(keyturn.url)
    assert notes(service, tokens["access_token"]) == (200, "")
    reports = httpx.get(f"{service}/reports", headers=bearer(tokens["access_token"]))
    assert (reports.status_code, reports.json()["error"]) == (403, "insufficient_role")

    logout = httpx.post(f"{keyturn.url}/api/auth/logout", headers=bearer(tokens["access_token"]))
    assert logout.status_code == 204

    assert notes(service, tokens["access_token"]) == (401, "invalid_token")
    log = keyturn.log_path.read_text()
    for secret in (DEFAULT_PASSWORD, tokens["access_token"], tokens["refresh_token"]):
        assert secret not in log


def test_without_redis_the_service_trusts_a_token_until_it_expires(
    make_server: ServerFactory, make_resource_service: ServiceFactory
) -> None:
    """Without Redis the service cannot hear of a logout: it refuses the token only when it
    expires, which is why KEYTURN_ACCESS_TTL_SECONDS is short."""
    keyturn = make_server(KEYTURN_ACCESS_TTL_SECONDS="2")
    service = make_resource_service(KEYTURN_ISSUER=keyturn.url)
    tokens = log_in(keyturn.url)
    assert notes(service, tokens["access_token"]) == (200, "")
    httpx.post(f"{keyturn.url}/api/auth/logout", headers=bearer(tokens["access_token"]))

    assert notes(service, tokens["access_token"]) == (200, "")
    time.sleep(3.1)  # a two-second token lives until the second after: at most three
    assert notes(service, tokens["access_token"]) == (401, "token_expired")
    assert notes(service, "forged.token.value") == (401, "invalid_token")
