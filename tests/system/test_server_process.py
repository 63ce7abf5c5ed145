"""A real `keyturn serve`: the seed flow over HTTP, racing refreshes, kill -9, key rotation."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.support.api import DEFAULT_PASSWORD, bearer
from tests.support.processes import KeyturnServer, keyturn_environment, run_cli

pytestmark = pytest.mark.system


@pytest.fixture
def server_env(database_url: str) -> dict[str, str]:
    return keyturn_environment(KEYTURN_DATABASE_URL=database_url)


def login(client: httpx.Client, email: str = "ada@example.com") -> dict:
    client.post("/api/auth/register", json={"email": email, "password": DEFAULT_PASSWORD})
    response = client.post("/api/auth/login", json={"email": email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 200, response.text
    body: dict = response.json()
    return body


def test_twenty_concurrent_refreshes_over_http(tmp_path: Path, server_env: dict) -> None:
    """Twenty connections refresh one token at once: all 200, one successor, which works."""
    with KeyturnServer(cwd=tmp_path, env=server_env) as server:
        with httpx.Client(base_url=server.url) as client:
            tokens = login(client)

        async def race() -> list[httpx.Response]:
            async def one() -> httpx.Response:
                async with httpx.AsyncClient(base_url=server.url) as fresh:
                    return await fresh.post(
                        "/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
                    )

            return await asyncio.gather(*(one() for _ in range(20)))

        responses = asyncio.run(race())
        assert sorted({r.status_code for r in responses}) == [200]
        successors = {r.json()["refresh_token"] for r in responses}
        assert len(successors) == 1
        with httpx.Client(base_url=server.url) as client:
            follow = client.post("/api/auth/refresh", json={"refresh_token": successors.pop()})
            assert follow.status_code == 200


def test_kill_9_loses_no_session(tmp_path: Path, server_env: dict) -> None:
    """Sessions, rotations and logouts committed before a kill -9 are all there after it."""
    server = KeyturnServer(cwd=tmp_path, env=server_env).start()
    try:
        with httpx.Client(base_url=server.url) as client:
            kept = login(client)
            rotated = client.post(
                "/api/auth/refresh", json={"refresh_token": kept["refresh_token"]}
            ).json()
            ended = login(client, "grace@example.com")
            assert (
                client.post("/api/auth/logout", headers=bearer(ended["access_token"])).status_code
                == 204
            )
        server.kill_hard()
        server.start()
        with httpx.Client(base_url=server.url) as client:
            assert (
                client.get("/api/auth/me", headers=bearer(rotated["access_token"])).status_code
                == 200
            )
            again = client.post(
                "/api/auth/refresh", json={"refresh_token": rotated["refresh_token"]}
            )
            assert again.status_code == 200
            assert (
                client.get("/api/auth/me", headers=bearer(ended["access_token"])).status_code == 401
            )
            assert (
                client.post(
                    "/api/auth/refresh", json={"refresh_token": ended["refresh_token"]}
                ).status_code
                == 401
            )
    finally:
        server.stop()


def test_key_rotation_keeps_old_tokens_valid(tmp_path: Path, server_env: dict) -> None:
    """After `keyturn keys rotate`, tokens signed by the old key still work and both public
    keys are published."""
    with (
        KeyturnServer(cwd=tmp_path, env=server_env) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        tokens = login(client)
        before = {key["kid"] for key in client.get("/.well-known/jwks.json").json()["keys"]}
        assert run_cli("keys", "rotate", cwd=tmp_path, env=server_env).returncode == 0
        for _ in range(50):
            after = {k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]}
            if len(after) == 2:
                break
            time.sleep(0.1)
        assert before < after
        assert client.get("/api/auth/me", headers=bearer(tokens["access_token"])).status_code == 200
