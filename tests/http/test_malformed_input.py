"""Malformed input of any kind gets a clear 4xx with a JSON error body, never a 5xx."""

from __future__ import annotations

import httpx
import pytest

from tests.support.api import bearer, login

ROUTES = ["/api/auth/register", "/api/auth/login", "/api/auth/refresh", "/api/auth/logout"]
BODIES: list[tuple[str, bytes, str]] = [
    ("not json", b"{not json", "application/json"),
    ("truncated", b'{"email": "a@b.c", "password": ', "application/json"),
    ("array", b"[1, 2, 3]", "application/json"),
    ("null", b"null", "application/json"),
    ("number", b"12", "application/json"),
    ("invalid utf-8", b'{"email": "\xff\xfe", "password": "x"}', "application/json"),
    ("utf-16", '{"email": "a@b.c"}'.encode("utf-16"), "application/json"),
    (
        "lone surrogate",
        b'{"email": "\\ud800@example.com", "password": "xxxxxxxxxx"}',
        "application/json",
    ),
    (
        "nul byte",
        b'{"email": "a\\u0000@example.com", "password": "xxxxxxxxxx"}',
        "application/json",
    ),
    ("wrong types", b'{"email": 5, "password": ["x"], "remember_me": "yes"}', "application/json"),
    ("form body", b"email=a@b.c&password=x", "application/x-www-form-urlencoded"),
    ("no content type", b'{"email": "a@b.c"}', ""),
    ("deep nesting", b"[" * 10000 + b"]" * 10000, "application/json"),
]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(("name", "body", "content_type"), BODIES, ids=[b[0] for b in BODIES])
async def test_malformed_bodies_get_4xx(
    api: httpx.AsyncClient, route: str, name: str, body: bytes, content_type: str
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await api.post(route, content=body, headers=headers)
    assert 400 <= response.status_code < 500, (name, response.status_code, response.text)
    assert {"error", "message"} <= set(response.json())


async def test_oversized_body_is_413(api: httpx.AsyncClient) -> None:
    body = b'{"email": "' + b"a" * 200_000 + b'@example.com", "password": "x"}'
    response = await api.post(
        "/api/auth/login", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


async def test_oversized_chunked_body_is_413(api: httpx.AsyncClient) -> None:
    async def chunks():
        for _ in range(100):
            yield b"x" * 10_000

    response = await api.post(
        "/api/auth/login", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer a b",
        "bearer \x7f",
        "Token abc",
        "Bearer " + "A" * 9000,
    ],
)
async def test_malformed_authorization_headers_get_401(api: httpx.AsyncClient, header: str) -> None:
    response = await api.get("/api/auth/me", headers={"authorization": header})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_odd_path_parameters_are_4xx(api: httpx.AsyncClient) -> None:
    tokens = await login(api)
    for session_id in ["x" * 500, "%00", "..%2F..%2Fetc", "\u202e"]:
        response = await api.delete(
            f"/api/auth/sessions/{session_id}", headers=bearer(tokens.access_token)
        )
        assert response.status_code == 404, session_id


async def test_unknown_route_and_method_are_json(api: httpx.AsyncClient) -> None:
    missing = await api.get("/api/nothing")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    wrong = await api.get("/api/auth/login")
    assert (wrong.status_code, wrong.json()["error"]) == (405, "method_not_allowed")


async def test_admin_paging_parameters_are_validated(api: httpx.AsyncClient) -> None:
    tokens = await login(api)
    response = await api.get("/api/admin/users?limit=abc", headers=bearer(tokens.access_token))
    assert response.status_code in (403, 422)


@pytest.mark.parametrize(
    "route", ["/api/auth/register", "/api/auth/login", "/api/auth/refresh", "/api/auth/logout"]
)
async def test_json_sent_as_a_form_names_the_content_type(
    api: httpx.AsyncClient, route: str
) -> None:
    """`curl -d '{...}'` sends form encoding; the refusal says which header to send."""
    body = b'{"email": "ada@example.com", "password": "correct horse battery staple"}'
    if route.endswith(("refresh", "logout")):
        body = b'{"refresh_token": "ktr_whatever"}'
    response = await api.post(
        route, content=body, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert 400 <= response.status_code < 500
    assert response.json()["error"] == "invalid_request"
    assert "Content-Type: application/json" in response.json()["message"]


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/api/auth/register", {"email": "ada@example.com", "password": "x" * 20, "name": "x"}),
        ("/api/auth/login", {"email": "ada@example.com", "password": "x" * 20, "name": "x"}),
        ("/api/auth/refresh", {"refresh_token": "ktr_whatever", "name": "x"}),
    ],
)
async def test_unknown_fields_are_refused_by_name(
    api: httpx.AsyncClient, route: str, body: dict[str, str]
) -> None:
    """A field the API does not know is a 422 naming it, not dropped in silence."""
    response = await api.post(route, json=body)
    assert (response.status_code, response.json()["error"]) == (422, "invalid_request")
    assert "name" in response.json()["message"]
    assert any(reason.startswith("name:") for reason in response.json()["reasons"])


async def test_a_registration_with_an_unknown_field_creates_no_account(
    api: httpx.AsyncClient,
) -> None:
    """The refusal is whole: the account is not created without the field."""
    body = {"email": "ada@example.com", "password": "correct horse battery staple"}
    refused = await api.post("/api/auth/register", json={**body, "name": "Ada"})
    assert refused.status_code == 422
    assert (await api.post("/api/auth/register", json=body)).status_code == 201
