"""A third-party OAuth 2.0 client (Authlib) against a real `keyturn serve`."""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import authlib.deprecate
import httpx
import pytest

from tests.support.api import DEFAULT_PASSWORD, bearer
from tests.support.processes import ServerFactory

with warnings.catch_warnings():
    # Authlib prefers the httpx2 fork and warns when it falls back to httpx.
    warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuth2Client, OAuthError

pytestmark = pytest.mark.system


def register(base_url: str, email: str = "ada@example.com") -> None:
    response = httpx.post(
        f"{base_url}/api/auth/register", json={"email": email, "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 201, response.text


def test_authlib_password_login_refresh_and_revoke(
    make_server: ServerFactory, database_url: str
) -> None:
    """Authlib logs in with the password grant, refreshes (rotation) and revokes, on SQLite
    and on PostgreSQL."""
    server = make_server(KEYTURN_DATABASE_URL=database_url)
    register(server.url)
    token_url = f"{server.url}/oauth/token"

    with OAuth2Client(
        client_id="authlib-tests",
        token_endpoint_auth_method="none",
        revocation_endpoint_auth_method="none",
    ) as client:
        token = client.fetch_token(token_url, username="ada@example.com", password=DEFAULT_PASSWORD)
        assert token["token_type"] == "Bearer"
        me = client.get(f"{server.url}/api/auth/me")
        assert me.status_code == 200
        assert me.json()["user"]["email"] == "ada@example.com"

        renewed = client.refresh_token(token_url, refresh_token=token["refresh_token"])
        assert renewed["refresh_token"] != token["refresh_token"]
        assert client.get(f"{server.url}/api/auth/me").status_code == 200

        revoked = client.revoke_token(
            f"{server.url}/oauth/revoke",
            token=renewed["refresh_token"],
            token_type_hint="refresh_token",
        )
        assert revoked.status_code == 200
        after = httpx.get(f"{server.url}/api/auth/me", headers=bearer(renewed["access_token"]))
        assert (after.status_code, after.json()["error"]) == (401, "invalid_token")

        with pytest.raises(OAuthError) as refused:
            client.refresh_token(token_url, refresh_token=renewed["refresh_token"])
        assert refused.value.error == "invalid_grant"

        with pytest.raises(OAuthError) as wrong:
            client.fetch_token(token_url, username="ada@example.com", password="wrong password")
        assert wrong.value.error == "invalid_grant"


async def test_authlib_async_client_refreshes_an_expired_token_by_itself(
    make_server: ServerFactory,
) -> None:
    """Authlib's async client renews an expired token through the refresh grant on its own."""
    server = make_server(KEYTURN_ACCESS_TTL_SECONDS="1")
    register(server.url)
    updates: list[dict[str, Any]] = []

    async def update_token(token: dict[str, Any], **_: Any) -> None:
        updates.append(token)

    async with AsyncOAuth2Client(
        client_id="authlib-tests",
        token_endpoint_auth_method="none",
        token_endpoint=f"{server.url}/oauth/token",
        update_token=update_token,
        leeway=0,
    ) as client:
        first = await client.fetch_token(username="ada@example.com", password=DEFAULT_PASSWORD)
        await asyncio.sleep(1.2)  # a real server's real clock: let the access token expire

        me = await client.get(f"{server.url}/api/auth/me")

    assert me.status_code == 200
    assert len(updates) == 1
    assert updates[0]["refresh_token"] != first["refresh_token"]
