"""The pages over HTTP: security headers, redirects by sign-in state, static files."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.support.api import DEFAULT_PASSWORD, register

PAGE_PATHS = ["/login", "/register"]


@pytest.mark.parametrize("path", PAGE_PATHS)
async def test_pages_carry_security_headers(api: httpx.AsyncClient, path: str) -> None:
    """No inline script, no framing, no referrer, no caching of a page."""
    response = await api.get(path)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in response.text
    assert ' style="' not in response.text
    assert 'src="/static/app.js' in response.text
    # Submitted before the script runs, a form must not put the password in a URL.
    assert re.search(r'<form id="[a-z-]+" method="post"', response.text)


@pytest.mark.parametrize("path", [*PAGE_PATHS, "/dashboard"])
async def test_head_answers_as_get_does(api: httpx.AsyncClient, path: str) -> None:
    """RFC 9110 §9.3.2: a HEAD request gets the GET's status and headers."""
    got, head = await api.get(path), await api.head(path)

    assert head.status_code == got.status_code
    assert head.headers["content-security-policy"] == got.headers["content-security-policy"]
    assert head.headers.get("location") == got.headers.get("location")


async def test_every_input_has_a_label(api: httpx.AsyncClient) -> None:
    """Each input is named by a <label for=…> (screen readers, and a bigger click target)."""
    for path in PAGE_PATHS:
        html = (await api.get(path)).text
        inputs = re.findall(r'<input id="([^"]+)"', html)
        assert len(inputs) >= 3, path
        for input_id in inputs:
            assert f'<label for="{input_id}">' in html, (path, input_id)


async def test_json_api_is_left_alone(api: httpx.AsyncClient) -> None:
    """The page headers are added per page: the JSON hot path carries none of them."""
    response = await api.get("/api/auth/me")
    assert response.status_code == 401
    assert "content-security-policy" not in response.headers


async def test_dashboard_without_cookies_sends_to_login(api: httpx.AsyncClient) -> None:
    response = await api.get("/dashboard")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert (await api.get("/")).headers["location"] == "/dashboard"


async def test_signed_in_browser_skips_the_login_page(api: httpx.AsyncClient) -> None:
    """With a valid access cookie /login leads to the dashboard, which then renders."""
    await register(api)
    login = await api.post(
        "/api/auth/login",
        json={"email": "ada@example.com", "password": DEFAULT_PASSWORD},
        headers={"X-Auth-Mode": "cookie"},
    )
    assert login.status_code == 200

    to_dashboard = await api.get("/login")
    dashboard = await api.get("/dashboard")

    assert (to_dashboard.status_code, to_dashboard.headers["location"]) == (303, "/dashboard")
    assert dashboard.status_code == 200
    assert 'data-page="dashboard"' in dashboard.text
    assert dashboard.headers["cache-control"] == "no-store"


async def test_garbage_access_cookie_is_a_401_not_a_crash(api: httpx.AsyncClient) -> None:
    """A stale or forged access cookie: the page still renders, the API says invalid_token."""
    api.cookies.set("access_token", "not.a.jwt", domain="keyturn.test")
    assert (await api.get("/login")).status_code == 200
    me = await api.get("/api/auth/me")
    assert (me.status_code, me.json()["error"]) == (401, "invalid_token")


async def test_static_files_are_served_with_nosniff(api: httpx.AsyncClient) -> None:
    script = await api.get("/static/app.js")
    style = await api.get("/static/app.css")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert script.headers["x-content-type-options"] == "nosniff"
    assert style.status_code == 200
    assert "text/css" in style.headers["content-type"]


async def test_docs_page_and_its_assets_come_from_keyturn(api: httpx.AsyncClient) -> None:
    """/docs names no other origin, forbids inline script, and its Swagger UI files are
    served here with nosniff."""
    page = await api.get("/docs")

    assert page.status_code == 200
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert re.findall(r'(?:src|href)="(https?:)?//', page.text) == []
    for asset, kind in (("swagger-ui-bundle.js", "javascript"), ("swagger-ui.css", "css")):
        served = await api.get(f"/docs/assets/{asset}")
        assert served.status_code == 200
        assert kind in served.headers["content-type"]
        assert served.headers["x-content-type-options"] == "nosniff"
    assert (await api.get("/redoc")).status_code == 404


async def test_a_browser_gets_an_html_404_page(api: httpx.AsyncClient) -> None:
    """A browser asking for a page that does not exist gets an HTML page with the page
    security headers; API, OAuth and discovery paths keep their JSON 404."""
    accept = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}

    page = await api.get("/nowhere", headers=accept)

    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "Page not found" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    for path in ("/api/nowhere", "/oauth/nowhere", "/.well-known/nowhere", "/api"):
        answer = await api.get(path, headers=accept)
        assert (answer.status_code, answer.json()["error"]) == (404, "not_found"), path
    for headers in ({}, {"Accept": "application/json"}, {"Accept": "text/html;q=0"}):
        answer = await api.get("/nowhere", headers=headers)
        assert (answer.status_code, answer.json()["error"]) == (404, "not_found"), headers
