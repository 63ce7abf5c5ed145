"""Sessions: listing them, ending one, a password change ending the others, and revocation
reaching every instance (through the database feed, and through Redis at once)."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import httpx
import pytest

from keyturn.clock import FrozenClock
from tests.support.api import DEFAULT_PASSWORD, Login, bearer, error_of, login, refresh
from tests.support.environment import ApiFactory, RedisDatabase

NEW_PASSWORD = "a much better passphrase"


async def login_as(api: httpx.AsyncClient, agent: str, email: str = "ada@example.com") -> Login:
    await api.post("/api/auth/register", json={"email": email, "password": DEFAULT_PASSWORD})
    response = await api.post(
        "/api/auth/login",
        json={"email": email, "password": DEFAULT_PASSWORD},
        headers={"User-Agent": agent},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    return Login(body["access_token"], body["refresh_token"], body["expires_in"], body["user"])


async def sessions_of(api: httpx.AsyncClient, tokens: Login) -> list[dict[str, object]]:
    response = await api.get("/api/auth/sessions", headers=bearer(tokens.access_token))
    assert response.status_code == 200, response.text
    sessions: list[dict[str, object]] = response.json()["sessions"]
    return sessions


def session_id_of(access_token: str) -> str:
    payload = access_token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    sid: str = claims["sid"]
    return sid


async def is_refused(api: httpx.AsyncClient, tokens: Login) -> bool:
    me = await api.get("/api/auth/me", headers=bearer(tokens.access_token))
    return error_of(me) == (401, "invalid_token")


async def refused_within(api: httpx.AsyncClient, tokens: Login, *, seconds: float) -> float:
    """Seconds until `api` refuses the access token; fails after `seconds`."""
    started = time.monotonic()
    while not await is_refused(api, tokens):
        elapsed = time.monotonic() - started
        assert elapsed < seconds, f"still accepted after {elapsed:.2f} s"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_sessions_list_marks_the_current_one(
    api: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """Every live session is listed with its details; `current` marks the caller's."""
    phone = await login_as(api, "Phone/1.0")
    clock.advance(seconds=5)
    laptop = await login_as(api, "Laptop/2.0")
    await login_as(api, "Other/3.0", email="bob@example.com")

    listed = await sessions_of(api, laptop)

    assert len(listed) == 2
    assert all(
        set(s) >= {"id", "created_at", "last_used_at", "user_agent", "ip", "current"}
        for s in listed
    )
    by_agent = {s["user_agent"]: s for s in listed}
    assert set(by_agent) == {"Phone/1.0", "Laptop/2.0"}
    assert by_agent["Laptop/2.0"]["current"] is True
    assert by_agent["Phone/1.0"]["current"] is False
    assert by_agent["Laptop/2.0"]["id"] == session_id_of(laptop.access_token)
    assert by_agent["Phone/1.0"]["ip"] == "203.0.113.7"
    from_phone = await sessions_of(api, phone)
    assert [s["user_agent"] for s in from_phone if s["current"]] == ["Phone/1.0"]


async def test_ending_another_users_session_is_404(api: httpx.AsyncClient) -> None:
    """A session id of someone else's is answered as if it did not exist, and survives."""
    ada = await login_as(api, "A")
    bob = await login_as(api, "B", email="bob@example.com")
    bobs_session = session_id_of(bob.access_token)

    response = await api.delete(
        f"/api/auth/sessions/{bobs_session}", headers=bearer(ada.access_token)
    )

    assert error_of(response) == (404, "session_not_found")
    assert (await api.get("/api/auth/me", headers=bearer(bob.access_token))).status_code == 200


@pytest.mark.parametrize("session_id", ["nope", "x" * 65, "x" * 5000, "%00", "%C3%BC"])
async def test_odd_session_ids_are_404(api: httpx.AsyncClient, session_id: str) -> None:
    ada = await login_as(api, "A")
    response = await api.delete(
        f"/api/auth/sessions/{session_id}", headers=bearer(ada.access_token)
    )
    assert response.status_code == 404


async def test_ending_own_session_stops_its_tokens_at_once(api: httpx.AsyncClient) -> None:
    """DELETE /api/auth/sessions/{id}: that session's access and refresh tokens stop on the
    next request; the caller's own session goes on; ending it twice is 404."""
    phone = await login_as(api, "Phone")
    laptop = await login_as(api, "Laptop")
    phone_session = session_id_of(phone.access_token)

    ended = await api.delete(
        f"/api/auth/sessions/{phone_session}", headers=bearer(laptop.access_token)
    )

    assert ended.status_code == 204
    assert await is_refused(api, phone)
    assert error_of(await refresh(api, phone.refresh_token)) == (401, "invalid_refresh_token")
    assert [s["user_agent"] for s in await sessions_of(api, laptop)] == ["Laptop"]
    again = await api.delete(
        f"/api/auth/sessions/{phone_session}", headers=bearer(laptop.access_token)
    )
    assert error_of(again) == (404, "session_not_found")


async def test_password_change_ends_the_other_sessions(api: httpx.AsyncClient) -> None:
    """The session that changed the password goes on; every other one ends at once; the old
    password stops working and the new one works."""
    phone = await login_as(api, "Phone")
    laptop = await login_as(api, "Laptop")
    tablet = await login_as(api, "Tablet")

    changed = await api.post(
        "/api/auth/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(laptop.access_token),
    )

    assert changed.status_code == 204
    for other in (phone, tablet):
        assert await is_refused(api, other)
        assert error_of(await refresh(api, other.refresh_token)) == (401, "invalid_refresh_token")
    assert (await api.get("/api/auth/me", headers=bearer(laptop.access_token))).status_code == 200
    assert (await refresh(api, laptop.refresh_token)).status_code == 200
    old = await api.post(
        "/api/auth/login", json={"email": "ada@example.com", "password": DEFAULT_PASSWORD}
    )
    assert error_of(old) == (401, "invalid_credentials")
    await login(api, password=NEW_PASSWORD, create=False)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"current_password": "wrong wrong wrong", "new_password": NEW_PASSWORD},
         (401, "invalid_credentials")),
        ({"current_password": DEFAULT_PASSWORD, "new_password": "password"},
         (422, "weak_password")),
        ({"current_password": DEFAULT_PASSWORD}, (422, "invalid_request")),
        ({"current_password": 5, "new_password": NEW_PASSWORD}, (422, "invalid_request")),
    ],
)  # fmt: skip
async def test_refused_password_change_changes_nothing(
    api: httpx.AsyncClient, body: dict[str, object], expected: tuple[int, str]
) -> None:
    phone = await login_as(api, "Phone")
    laptop = await login_as(api, "Laptop")

    response = await api.post("/api/auth/password", json=body, headers=bearer(laptop.access_token))

    assert error_of(response) == expected
    assert not await is_refused(api, phone)
    await login(api, create=False)  # the old password still works


async def test_logout_reaches_another_instance_through_the_database_feed(
    make_api: ApiFactory,
) -> None:
    """Without Redis, instance B refuses a token logged out on A within a second."""
    a = await make_api()
    b = await make_api()
    tokens = await login(a)
    assert not await is_refused(b, tokens)

    assert (
        await a.post("/api/auth/logout", headers=bearer(tokens.access_token))
    ).status_code == 204

    await refused_within(b, tokens, seconds=1.0)


@pytest.mark.redis
async def test_logout_reaches_another_instance_through_redis_at_once(
    make_api: ApiFactory, redis_database: RedisDatabase
) -> None:
    """With Redis, the revocation reaches B by pub/sub long before B's next database poll
    (set to 5 s here), and the session's key is in Redis for other services to read."""
    settings = {
        "redis_url": redis_database.url,
        "revocation_poll_seconds": 5,
        "revocation_max_staleness_seconds": 30,
    }
    a = await make_api(**settings)
    b = await make_api(**settings)
    await asyncio.sleep(0.3)  # both subscribed
    tokens = await login(a)
    assert not await is_refused(b, tokens)

    await a.post("/api/auth/logout", headers=bearer(tokens.access_token))
    elapsed = await refused_within(b, tokens, seconds=1.0)

    assert elapsed < 1.0
    key = "keyturn:revoked:sid:" + session_id_of(tokens.access_token)
    assert redis_database.client.get(key) == b"1"
    assert redis_database.client.pttl(key) > 0


async def test_a_login_beyond_the_session_limit_ends_the_oldest_session(
    make_api: ApiFactory, clock: FrozenClock
) -> None:
    """With KEYTURN_MAX_SESSIONS_PER_USER=3, the fourth login ends the first session: its
    refresh token and access token are refused, the three newest live on, and the trail
    says why."""
    api = await make_api(max_sessions_per_user=3)
    logins = []
    for agent in ("first", "second", "third", "fourth"):
        logins.append(await login_as(api, agent))
        clock.advance(seconds=1)
    first, *newest = logins

    me = await api.get("/api/auth/me", headers=bearer(first.access_token))
    assert error_of(me) == (401, "invalid_token")
    refreshed = await refresh(api, first.refresh_token)
    assert error_of(refreshed) == (401, "invalid_refresh_token")
    for tokens in newest:
        assert (await api.get("/api/auth/me", headers=bearer(tokens.access_token))).is_success
    live = await sessions_of(api, newest[-1])
    assert sorted(str(s["user_agent"]) for s in live) == ["fourth", "second", "third"]

    services = api.app.state.services  # type: ignore[attr-defined]
    services.accounts.register(
        email="root@example.com", password=DEFAULT_PASSWORD, roles=("admin", "user")
    )
    root = await login_as(api, "admin", email="root@example.com")
    trail = await api.get(
        "/api/admin/audit", params={"event": "session_evicted"}, headers=bearer(root.access_token)
    )
    assert trail.status_code == 200, trail.text
    events = trail.json()["events"]
    assert [(e["user_id"], e["session_id"]) for e in events] == [
        (first.user["id"], session_id_of(first.access_token))
    ]
