"""Step-up: changes that need a recent login refuse an old one with 403
reauthentication_required; POST /api/auth/reauthenticate makes the session recent again."""

from __future__ import annotations

import httpx
import pytest

from keyturn.clock import FrozenClock
from tests.support.api import DEFAULT_PASSWORD, bearer, error_of, login, refresh
from tests.support.environment import ApiFactory
from tests.support.mfa import claims_of, code_for, enrol

EMAIL = "ada@example.com"
# Each route that needs a recent login, with a body it accepts once the login is recent.
CURRENT = {"current_password": DEFAULT_PASSWORD}
NEW = "another fine passphrase"
# Each route that needs a recent login, a body, and its answer once the login is recent.
RECENT_ROUTES = [
    ("POST", "/api/auth/password", {**CURRENT, "new_password": NEW}, 204),
    ("POST", "/api/auth/email/change", {"new_email": "a@b.example", **CURRENT}, 202),
    ("POST", "/api/auth/mfa/totp/setup", None, 200),
    ("POST", "/api/auth/mfa/totp/confirm", {"code": "123456"}, 404),  # no setup pending
    ("DELETE", "/api/auth/mfa/totp", None, 404),  # no app to turn off
    ("POST", "/api/auth/mfa/recovery-codes", None, 404),
]  # fmt: skip


async def call(
    api: httpx.AsyncClient, method: str, path: str, body: object, token: str
) -> httpx.Response:
    return await api.request(method, path, json=body, headers=bearer(token))


@pytest.mark.parametrize(("method", "path", "body", "status"), RECENT_ROUTES)
async def test_an_old_login_must_reauthenticate(
    api: httpx.AsyncClient, clock: FrozenClock, method: str, path: str, body: object, status: int
) -> None:
    """Past KEYTURN_REAUTH_SECONDS (600) since the login, even a refreshed token is refused;
    after reauthenticating with the password the route runs."""
    first = await login(api, EMAIL)
    clock.advance(seconds=601)
    renewed = (await refresh(api, first.refresh_token)).json()

    refused = await call(api, method, path, body, renewed["access_token"])

    assert error_of(refused) == (403, "reauthentication_required")
    again = await api.post(
        "/api/auth/reauthenticate",
        json={"password": DEFAULT_PASSWORD},
        headers=bearer(renewed["access_token"]),
    )
    assert again.status_code == 200, again.text
    fresh = again.json()["access_token"]
    assert claims_of(fresh)["sid"] == claims_of(first.access_token)["sid"]
    assert claims_of(fresh)["auth_time"] == int(clock.timestamp())
    allowed = await call(api, method, path, body, fresh)
    assert allowed.status_code == status, allowed.text


async def test_a_login_within_the_window_is_recent(
    api: httpx.AsyncClient, clock: FrozenClock
) -> None:
    first = await login(api, EMAIL)
    clock.advance(seconds=599)
    setup = await api.post("/api/auth/mfa/totp/setup", headers=bearer(first.access_token))
    assert setup.status_code == 200


async def test_reauthentication_carries_into_refreshes(
    api: httpx.AsyncClient, clock: FrozenClock
) -> None:
    first = await login(api, EMAIL)
    clock.advance(seconds=700)
    again = await api.post(
        "/api/auth/reauthenticate",
        json={"password": DEFAULT_PASSWORD},
        headers=bearer(first.access_token),
    )
    reauthenticated_at = int(clock.timestamp())
    clock.advance(seconds=60)

    renewed = (await refresh(api, first.refresh_token)).json()

    assert again.status_code == 200
    assert claims_of(renewed["access_token"])["auth_time"] == reauthenticated_at
    setup = await api.post("/api/auth/mfa/totp/setup", headers=bearer(renewed["access_token"]))
    assert setup.status_code == 200


async def test_reauthenticate_with_a_code_or_a_recovery_code(
    api: httpx.AsyncClient, clock: FrozenClock
) -> None:
    first = await login(api, EMAIL)
    app = await enrol(api, first.access_token, clock)
    clock.advance(seconds=900)
    renewed = (await refresh(api, first.refresh_token)).json()["access_token"]
    code = code_for(app.secret, clock.timestamp())

    by_code = await api.post(
        "/api/auth/reauthenticate", json={"code": code}, headers=bearer(renewed)
    )
    replay = await api.post(
        "/api/auth/reauthenticate", json={"code": code}, headers=bearer(renewed)
    )
    by_recovery = await api.post(
        "/api/auth/reauthenticate",
        json={"recovery_code": app.recovery_codes[0]},
        headers=bearer(renewed),
    )

    assert by_code.status_code == 200
    assert error_of(replay) == (401, "invalid_code")
    assert by_recovery.status_code == 200


async def test_wrong_passwords_count_like_failed_logins(
    make_api: ApiFactory, clock: FrozenClock
) -> None:
    api = await make_api(login_max_failures=2)
    first = await login(api, EMAIL)
    auth = bearer(first.access_token)
    for _ in range(2):
        wrong = await api.post(
            "/api/auth/reauthenticate", json={"password": "not my password"}, headers=auth
        )
        assert error_of(wrong) == (401, "invalid_credentials")

    locked = await api.post(
        "/api/auth/reauthenticate", json={"password": DEFAULT_PASSWORD}, headers=auth
    )

    assert error_of(locked) == (429, "too_many_requests")
    assert "retry-after" in locked.headers


@pytest.mark.parametrize(
    "body",
    [{}, {"password": DEFAULT_PASSWORD, "code": "123456"}, {"code": 5}, {"recovery_code": ""}],
)
async def test_reauthenticate_needs_exactly_one_answer(
    api: httpx.AsyncClient, body: dict[str, object]
) -> None:
    first = await login(api, EMAIL)
    response = await api.post(
        "/api/auth/reauthenticate", json=body, headers=bearer(first.access_token)
    )
    assert response.status_code == 422


async def test_reauthenticate_needs_an_access_token(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/auth/reauthenticate", json={"password": DEFAULT_PASSWORD})
    assert error_of(response) == (401, "missing_token")


async def test_cookie_mode_reauthentication_resets_the_access_cookie(
    api: httpx.AsyncClient, clock: FrozenClock
) -> None:
    await login(api, EMAIL)
    signed_in = await api.post(
        "/api/auth/login",
        json={"email": EMAIL, "password": DEFAULT_PASSWORD},
        headers={"X-Auth-Mode": "cookie"},
    )
    assert signed_in.status_code == 200
    csrf = {"X-CSRF-Token": api.cookies["csrf_token"]}
    clock.advance(seconds=700)
    await api.post("/api/auth/refresh", headers=csrf)
    assert error_of(await api.post("/api/auth/mfa/totp/setup", headers=csrf)) == (
        403,
        "reauthentication_required",
    )
    no_csrf = await api.post("/api/auth/reauthenticate", json={"password": DEFAULT_PASSWORD})
    assert error_of(no_csrf) == (403, "csrf_failed")

    again = await api.post(
        "/api/auth/reauthenticate", json={"password": DEFAULT_PASSWORD}, headers=csrf
    )

    assert again.status_code == 200, again.text
    assert "access_token" not in again.json()
    assert "access_token" in again.cookies
    assert (await api.post("/api/auth/mfa/totp/setup", headers=csrf)).status_code == 200
