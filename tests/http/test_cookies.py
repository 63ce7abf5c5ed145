"""Browser mode: tokens in HttpOnly cookies, CSRF protection, refresh and logout by cookie."""

from __future__ import annotations

from http.cookies import Morsel, SimpleCookie
from typing import Any

import httpx

from keyturn.clock import FrozenClock
from tests.support.api import DEFAULT_PASSWORD, bearer, error_of, login, register
from tests.support.environment import TEST_CLIENT_ADDRESS, ApiFactory

COOKIE_MODE = {"X-Auth-Mode": "cookie"}


def set_cookies(response: httpx.Response) -> dict[str, Morsel[str]]:
    """The cookies a response sets, by name, with their attributes."""
    found: dict[str, Morsel[str]] = {}
    for header in response.headers.get_list("set-cookie"):
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        found.update(jar)
    return found


async def cookie_login(
    api: httpx.AsyncClient, email: str = "ada@example.com", **extra: Any
) -> httpx.Response:
    existing = await api.post(
        "/api/auth/register", json={"email": email, "password": DEFAULT_PASSWORD}
    )
    assert existing.status_code in (201, 409), existing.text
    response = await api.post(
        "/api/auth/login",
        json={"email": email, "password": DEFAULT_PASSWORD, **extra},
        headers=COOKIE_MODE,
    )
    assert response.status_code == 200, response.text
    return response


def csrf_header(api: httpx.AsyncClient, name: str = "csrf_token") -> dict[str, str]:
    value = api.cookies.get(name)
    assert value, f"no {name} cookie in the jar"
    return {"X-CSRF-Token": value}


async def https_client(api: httpx.AsyncClient) -> httpx.AsyncClient:
    """A second client on the same app, speaking https, so Secure cookies travel back."""
    transport = httpx.ASGITransport(app=api.app, client=TEST_CLIENT_ADDRESS)  # type: ignore[attr-defined]
    return httpx.AsyncClient(transport=transport, base_url="https://keyturn.test")


async def test_cookie_login_sets_three_cookies_and_returns_no_token(
    api: httpx.AsyncClient,
) -> None:
    """Over plain http in development: bare names, HttpOnly tokens, a readable CSRF cookie."""
    response = await cookie_login(api)

    body = response.json()
    assert body["token_type"] == "cookie"
    assert body["user"]["email"] == "ada@example.com"
    assert "access_token" not in body
    assert "refresh_token" not in body
    assert response.headers["cache-control"] == "no-store"
    cookies = set_cookies(response)
    assert set(cookies) == {"access_token", "refresh_token", "csrf_token"}
    access, refresh, csrf = cookies["access_token"], cookies["refresh_token"], cookies["csrf_token"]
    assert (access["path"], access["samesite"], access["httponly"]) == ("/", "Lax", True)
    assert (refresh["path"], refresh["samesite"], refresh["httponly"]) == (
        "/api/auth",
        "Strict",
        True,
    )
    assert csrf["path"] == "/"
    assert not csrf["httponly"]
    assert not any(cookie["secure"] for cookie in cookies.values())
    assert all(int(cookie["max-age"]) > 3600 for cookie in cookies.values())
    assert access.value.count(".") == 2  # a JWT
    assert refresh.value.startswith("ktr_")


async def test_https_settings_use_prefixed_secure_cookies(make_api: ApiFactory) -> None:
    """Over https the cookies are Secure, `__Host-` (access, csrf) and `__Secure-` (refresh)."""
    plain = await make_api(issuer="https://keyturn.test")
    async with await https_client(plain) as api:
        response = await cookie_login(api)
        cookies = set_cookies(response)
        assert set(cookies) == {
            "__Host-access_token",
            "__Secure-refresh_token",
            "__Host-csrf_token",
        }
        assert all(cookie["secure"] for cookie in cookies.values())
        assert cookies["__Host-access_token"]["path"] == "/"
        assert cookies["__Host-csrf_token"]["path"] == "/"
        assert cookies["__Secure-refresh_token"]["path"] == "/api/auth"
        assert "domain" not in {k for c in cookies.values() for k, v in c.items() if v}

        me = await api.get("/api/auth/me")
        assert me.status_code == 200
        refreshed = await api.post(
            "/api/auth/refresh", headers=csrf_header(api, "__Host-csrf_token")
        )
        assert refreshed.status_code == 200, refreshed.text
        assert "__Secure-refresh_token" in set_cookies(refreshed)


async def test_bare_cookie_names_are_ignored_when_cookies_are_secure(
    make_api: ApiFactory,
) -> None:
    """With Secure cookies configured, a bare `access_token` cookie authenticates nothing."""
    api = await make_api(cookie_secure=True)
    response = await cookie_login(api)
    access = set_cookies(response)["__Host-access_token"]

    me = await api.get("/api/auth/me", headers={"Cookie": f"access_token={access.value}"})

    assert error_of(me) == (401, "missing_token")


async def test_remember_me_false_sets_session_cookies(api: httpx.AsyncClient) -> None:
    """Without remember_me the cookies have no Max-Age or Expires: gone with the browser."""
    response = await cookie_login(api, remember_me=False)
    cookies = set_cookies(response)
    assert set(cookies) == {"access_token", "refresh_token", "csrf_token"}
    for cookie in cookies.values():
        assert not cookie["max-age"]
        assert not cookie["expires"]

    refreshed = await api.post("/api/auth/refresh", headers=csrf_header(api))
    assert refreshed.status_code == 200
    assert not any(cookie["max-age"] for cookie in set_cookies(refreshed).values())


async def test_access_cookie_authenticates_reads(api: httpx.AsyncClient) -> None:
    """A GET needs no CSRF token: the access cookie alone is enough."""
    await cookie_login(api)
    me = await api.get("/api/auth/me")
    assert me.status_code == 200
    assert me.json()["user"]["email"] == "ada@example.com"
    sessions = await api.get("/api/auth/sessions")
    assert [s["current"] for s in sessions.json()["sessions"]] == [True]


async def test_state_change_by_cookie_without_csrf_header_is_refused(
    api: httpx.AsyncClient,
) -> None:
    """POST, DELETE by cookie without X-CSRF-Token: 403 csrf_failed, and nothing changes."""
    await cookie_login(api)
    session_id = (await api.get("/api/auth/sessions")).json()["sessions"][0]["id"]

    assert error_of(await api.post("/api/auth/logout-all")) == (403, "csrf_failed")
    assert error_of(await api.delete(f"/api/auth/sessions/{session_id}")) == (403, "csrf_failed")
    assert error_of(await api.post("/api/auth/logout")) == (403, "csrf_failed")
    assert error_of(await api.post("/api/auth/refresh")) == (403, "csrf_failed")
    assert (await api.get("/api/auth/me")).status_code == 200


async def test_csrf_header_must_equal_the_cookie(api: httpx.AsyncClient) -> None:
    """A wrong, empty or garbled X-CSRF-Token is refused, never a 5xx."""
    await cookie_login(api)
    token = api.cookies["csrf_token"]
    for value in ["wrong", "", token + "x", token.upper(), "a" * 5000]:
        response = await api.post("/api/auth/logout-all", headers={"X-CSRF-Token": value})
        assert error_of(response) == (403, "csrf_failed"), value
    garbled = await api.post("/api/auth/logout-all", headers=[(b"X-CSRF-Token", b"\xff\xfe")])
    assert error_of(garbled) == (403, "csrf_failed")
    assert (await api.get("/api/auth/me")).status_code == 200


async def test_csrf_token_of_another_session_is_refused(api: httpx.AsyncClient) -> None:
    """A CSRF token is bound to its session: planting another session's token (cookie and
    header alike) does not pass."""
    await cookie_login(api)
    other_csrf = api.cookies["csrf_token"]
    api.cookies.clear()
    await cookie_login(api, "bob@example.com")

    api.cookies.set("csrf_token", other_csrf, domain="keyturn.test", path="/")
    response = await api.post("/api/auth/logout-all", headers={"X-CSRF-Token": other_csrf})

    assert error_of(response) == (403, "csrf_failed")
    assert (await api.get("/api/auth/me")).json()["user"]["email"] == "bob@example.com"


async def test_forged_csrf_token_of_the_right_shape_is_refused(api: httpx.AsyncClient) -> None:
    """Matching header and cookie are not enough: the HMAC must verify."""
    await cookie_login(api)
    nonce, _, mac = api.cookies["csrf_token"].partition(".")
    forged = f"{nonce}.{'A' * len(mac)}"
    api.cookies.set("csrf_token", forged, domain="keyturn.test", path="/")

    response = await api.post("/api/auth/logout-all", headers={"X-CSRF-Token": forged})

    assert error_of(response) == (403, "csrf_failed")


async def test_foreign_origin_is_refused(api: httpx.AsyncClient) -> None:
    """A cookie request from another site fails even with the right token; ours passes."""
    await cookie_login(api)
    for origin in ["https://evil.example", "http://keyturn.test.evil.example", "null"]:
        response = await api.post(
            "/api/auth/logout-all", headers={**csrf_header(api), "Origin": origin}
        )
        assert error_of(response) == (403, "csrf_failed"), origin

    ours = await api.post(
        "/api/auth/logout-all", headers={**csrf_header(api), "Origin": "http://keyturn.test"}
    )
    assert ours.status_code == 204


async def test_cookie_login_from_a_foreign_origin_is_refused(api: httpx.AsyncClient) -> None:
    """Login CSRF: another site cannot sign this browser into an account it chose."""
    await register(api)
    response = await api.post(
        "/api/auth/login",
        json={"email": "ada@example.com", "password": DEFAULT_PASSWORD},
        headers={**COOKIE_MODE, "Origin": "https://evil.example"},
    )
    assert error_of(response) == (403, "csrf_failed")
    assert not response.headers.get_list("set-cookie")


async def test_public_origin_setting_is_the_allowed_origin(make_api: ApiFactory) -> None:
    """KEYTURN_PUBLIC_ORIGIN, when set, is what Origin must be (not the issuer)."""
    api = await make_api(public_origin="https://login.example.com")
    await register(api)
    body = {"email": "ada@example.com", "password": DEFAULT_PASSWORD}
    issuer = await api.post(
        "/api/auth/login", json=body, headers={**COOKIE_MODE, "Origin": "http://keyturn.test"}
    )
    public = await api.post(
        "/api/auth/login",
        json=body,
        headers={**COOKIE_MODE, "Origin": "https://login.example.com:443"},
    )
    assert error_of(issuer) == (403, "csrf_failed")
    assert public.status_code == 200


async def test_unknown_auth_mode_is_a_400(api: httpx.AsyncClient) -> None:
    await register(api)
    response = await api.post(
        "/api/auth/login",
        json={"email": "ada@example.com", "password": DEFAULT_PASSWORD},
        headers={"X-Auth-Mode": "smoke-signals"},
    )
    assert error_of(response) == (400, "invalid_request")


async def test_refresh_by_cookie_rotates_and_resets_the_cookies(
    api: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """An expired access cookie says token_expired; a body-less refresh with the CSRF header
    sets new cookies (the same CSRF token) and returns no token."""
    login_response = await cookie_login(api)
    first = set_cookies(login_response)
    clock.advance(seconds=901)
    assert error_of(await api.get("/api/auth/me")) == (401, "token_expired")

    refreshed = await api.post("/api/auth/refresh", headers=csrf_header(api))

    assert refreshed.status_code == 200, refreshed.text
    body = refreshed.json()
    assert body["token_type"] == "cookie"
    assert "access_token" not in body
    assert "refresh_token" not in body
    assert refreshed.headers["cache-control"] == "no-store"
    renewed = set_cookies(refreshed)
    assert renewed["refresh_token"].value != first["refresh_token"].value
    assert renewed["access_token"].value != first["access_token"].value
    assert renewed["csrf_token"].value == first["csrf_token"].value
    assert renewed["refresh_token"]["path"] == "/api/auth"
    assert (await api.get("/api/auth/me")).status_code == 200

    # The rotated token, replayed after the grace window, is theft: the session ends.
    clock.advance(seconds=60)
    replay = await api.post(
        "/api/auth/refresh", json={"refresh_token": first["refresh_token"].value}
    )
    assert error_of(replay) == (401, "refresh_token_reused")
    assert error_of(await api.get("/api/auth/me")) == (401, "invalid_token")


async def test_refresh_without_body_or_cookie_is_invalid_refresh_token(
    api: httpx.AsyncClient,
) -> None:
    assert error_of(await api.post("/api/auth/refresh")) == (401, "invalid_refresh_token")
    unknown = await api.post("/api/auth/refresh", headers={"Cookie": "refresh_token=ktr_nonsense"})
    assert error_of(unknown) == (401, "invalid_refresh_token")


async def test_logout_by_cookie_ends_the_session_and_clears_cookies(
    api: httpx.AsyncClient,
) -> None:
    """A body-less logout ends the cookie's session and expires all three cookies."""
    login_response = await cookie_login(api)
    old = set_cookies(login_response)

    response = await api.post("/api/auth/logout", headers=csrf_header(api))

    assert response.status_code == 204
    cleared = set_cookies(response)
    assert set(cleared) == {"access_token", "refresh_token", "csrf_token"}
    assert all(cookie["max-age"] == "0" for cookie in cleared.values())
    assert cleared["refresh_token"]["path"] == "/api/auth"
    assert not api.cookies
    gone = await api.get("/api/auth/me", headers=bearer(old["access_token"].value))
    assert error_of(gone) == (401, "invalid_token")
    stale = await api.post("/api/auth/refresh", json={"refresh_token": old["refresh_token"].value})
    assert error_of(stale) == (401, "invalid_refresh_token")


async def test_logout_by_refresh_cookie_after_the_access_token_expired(
    api: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """With only a live refresh cookie, logout still works, CSRF-checked against its session."""
    await cookie_login(api)
    clock.advance(seconds=901)
    assert error_of(await api.post("/api/auth/logout")) == (403, "csrf_failed")

    response = await api.post("/api/auth/logout", headers=csrf_header(api))

    assert response.status_code == 204
    assert error_of(await api.post("/api/auth/refresh", headers={"X-CSRF-Token": "x"})) == (
        401,
        "invalid_refresh_token",
    )


async def test_logout_all_by_cookie_clears_the_cookies(api: httpx.AsyncClient) -> None:
    bearer_login = await login(api)
    await cookie_login(api)

    response = await api.post("/api/auth/logout-all", headers=csrf_header(api))

    assert response.status_code == 204
    assert all(cookie["max-age"] == "0" for cookie in set_cookies(response).values())
    me = await api.get("/api/auth/me", headers=bearer(bearer_login.access_token))
    assert error_of(me) == (401, "invalid_token")


async def test_revoking_a_session_by_cookie_needs_and_accepts_csrf(
    api: httpx.AsyncClient,
) -> None:
    other = await login(api)
    await cookie_login(api)
    sessions = (await api.get("/api/auth/sessions")).json()["sessions"]
    other_id = next(s["id"] for s in sessions if not s["current"])

    response = await api.delete(f"/api/auth/sessions/{other_id}", headers=csrf_header(api))

    assert response.status_code == 204
    me = await api.get("/api/auth/me", headers=bearer(other.access_token))
    assert error_of(me) == (401, "invalid_token")


async def test_bearer_clients_are_unchanged(api: httpx.AsyncClient) -> None:
    """Without X-Auth-Mode the tokens come in the body and no cookie is set; a Bearer header
    needs no CSRF token, even when the browser also holds cookies."""
    await register(api)
    response = await api.post(
        "/api/auth/login", json={"email": "ada@example.com", "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 200
    assert response.json()["token_type"] == "Bearer"
    assert not response.headers.get_list("set-cookie")
    tokens = response.json()

    await cookie_login(api, "bob@example.com")
    me = await api.get("/api/auth/me", headers=bearer(tokens["access_token"]))
    assert me.json()["user"]["email"] == "ada@example.com"  # the header wins over the cookie
    logout = await api.post("/api/auth/logout-all", headers=bearer(tokens["access_token"]))
    assert logout.status_code == 204
    assert (await api.get("/api/auth/me")).json()["user"]["email"] == "bob@example.com"
