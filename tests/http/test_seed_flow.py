"""The flow every tutorial shows, done right: register, login, me, refresh, logout."""

from __future__ import annotations

import httpx

from keyturn.clock import FrozenClock
from tests.support.api import bearer, error_of, login, refresh, register


async def test_register_login_me_refresh_logout(api: httpx.AsyncClient) -> None:
    """The whole seed flow works and logout ends the access token at once."""
    user = await register(api, "ada@example.com", username="ada")
    fields = {"id", "email", "username", "roles", "created_at", "email_verified", "mfa_enabled"}
    assert set(user) == fields
    assert user["roles"] == ["user"]

    tokens = await login(api, "ada@example.com", create=False)
    me = await api.get("/api/auth/me", headers=bearer(tokens.access_token))
    assert me.status_code == 200
    assert me.json()["user"]["email"] == "ada@example.com"

    renewed = await refresh(api, tokens.refresh_token)
    assert renewed.status_code == 200
    body = renewed.json()
    assert body["token_type"] == "Bearer"
    assert body["refresh_token"] != tokens.refresh_token
    assert renewed.headers["cache-control"] == "no-store"

    logout = await api.post("/api/auth/logout", headers=bearer(body["access_token"]))
    assert logout.status_code == 204

    after = await api.get("/api/auth/me", headers=bearer(body["access_token"]))
    assert error_of(after) == (401, "invalid_token")
    assert after.headers["www-authenticate"].startswith("Bearer")
    assert error_of(await refresh(api, body["refresh_token"])) == (401, "invalid_refresh_token")


async def test_expired_access_token_says_token_expired_then_refresh_works(
    api: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """An expired access token gets 401 token_expired; after a refresh the call works."""
    tokens = await login(api)
    clock.advance(seconds=901)

    expired = await api.get("/api/auth/me", headers=bearer(tokens.access_token))
    assert error_of(expired) == (401, "token_expired")
    assert 'error="invalid_token"' in expired.headers["www-authenticate"]

    renewed = await refresh(api, tokens.refresh_token)
    assert renewed.status_code == 200
    me = await api.get("/api/auth/me", headers=bearer(renewed.json()["access_token"]))
    assert me.status_code == 200


async def test_login_with_username(api: httpx.AsyncClient) -> None:
    """A username works in place of the email, case-insensitively."""
    await register(api, "grace@example.com", username="Grace")
    response = await api.post(
        "/api/auth/login", json={"username": "grace", "password": "correct horse battery staple"}
    )
    assert response.status_code == 200
    assert response.json()["user"]["username"] == "Grace"


async def test_missing_token_has_bare_bearer_challenge(api: httpx.AsyncClient) -> None:
    """No credentials: 401 missing_token and a challenge without an error code (RFC 6750 §3.1)."""
    response = await api.get("/api/auth/me")
    assert error_of(response) == (401, "missing_token")
    assert response.headers["www-authenticate"] == 'Bearer realm="keyturn"'


async def test_logout_all_ends_every_session(api: httpx.AsyncClient) -> None:
    """logout-all ends the caller's other sessions too."""
    first = await login(api)
    second = await login(api, create=False)
    response = await api.post("/api/auth/logout-all", headers=bearer(second.access_token))
    assert response.status_code == 204
    for tokens in (first, second):
        me = await api.get("/api/auth/me", headers=bearer(tokens.access_token))
        assert error_of(me) == (401, "invalid_token")
        assert error_of(await refresh(api, tokens.refresh_token)) == (401, "invalid_refresh_token")


async def test_logout_with_refresh_token_only(api: httpx.AsyncClient) -> None:
    """A client whose access token expired can still log out with its refresh token."""
    tokens = await login(api)
    response = await api.post("/api/auth/logout", json={"refresh_token": tokens.refresh_token})
    assert response.status_code == 204
    me = await api.get("/api/auth/me", headers=bearer(tokens.access_token))
    assert error_of(me) == (401, "invalid_token")
