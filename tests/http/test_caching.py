"""What the API answers belongs to one caller: no cache may keep it (RFC 9111 §5.2.2.5)."""

from __future__ import annotations

import httpx

from tests.support.api import bearer, login, refresh


async def test_answers_about_the_caller_are_never_stored(api: httpx.AsyncClient) -> None:
    tokens = await login(api)
    me = await api.get("/api/auth/me", headers=bearer(tokens.access_token))
    sessions = await api.get("/api/auth/sessions", headers=bearer(tokens.access_token))
    refused = await api.get("/api/auth/me")
    for response in (me, sessions, refused):
        assert response.headers.get_list("cache-control") == ["no-store"], response.url


async def test_a_route_that_sets_its_own_policy_keeps_it(api: httpx.AsyncClient) -> None:
    tokens = await login(api)
    renewed = await refresh(api, tokens.refresh_token)
    assert renewed.status_code == 200
    assert renewed.headers.get_list("cache-control") == ["no-store"]
    assert renewed.headers["pragma"] == "no-cache"


async def test_public_documents_are_left_to_caches(api: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/.well-known/jwks.json"):
        response = await api.get(path)
        assert response.status_code == 200
        assert "cache-control" not in response.headers, path
