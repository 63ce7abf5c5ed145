"""Refresh-token rotation: one successor per token, reuse ends the session, races are safe."""

from __future__ import annotations

import asyncio

import httpx

from keyturn.clock import FrozenClock
from tests.support.api import bearer, error_of, login, refresh


async def test_every_refresh_rotates_the_token(api: httpx.AsyncClient) -> None:
    """Each refresh returns a new refresh token and a working access token."""
    tokens = await login(api)
    current = tokens.refresh_token
    seen = {current}
    for _ in range(3):
        response = await refresh(api, current)
        assert response.status_code == 200
        current = response.json()["refresh_token"]
        assert current not in seen
        seen.add(current)
        me = await api.get("/api/auth/me", headers=bearer(response.json()["access_token"]))
        assert me.status_code == 200


async def test_reused_refresh_token_ends_the_session(
    api: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """Presenting an already rotated refresh token after the grace window revokes the whole
    session: the thief's and the owner's tokens all stop working."""
    first = await login(api)
    rotated = await refresh(api, first.refresh_token)
    successor = rotated.json()
    clock.advance(seconds=30)

    replay = await refresh(api, first.refresh_token)

    assert error_of(replay) == (401, "refresh_token_reused")
    for access in (first.access_token, successor["access_token"]):
        assert error_of(await api.get("/api/auth/me", headers=bearer(access))) == (
            401,
            "invalid_token",
        )
    assert error_of(await refresh(api, successor["refresh_token"])) == (
        401,
        "invalid_refresh_token",
    )


async def test_reuse_within_grace_returns_the_same_successor(
    api: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """A retry within the grace window gets the same successor and a fresh access token."""
    first = await login(api)
    a = (await refresh(api, first.refresh_token)).json()
    clock.advance(seconds=5)
    b = await refresh(api, first.refresh_token)
    assert b.status_code == 200
    assert b.json()["refresh_token"] == a["refresh_token"]
    assert (
        await api.get("/api/auth/me", headers=bearer(b.json()["access_token"]))
    ).status_code == 200
    assert (await refresh(api, a["refresh_token"])).status_code == 200


async def test_zero_grace_makes_any_reuse_theft(make_api) -> None:
    api = await make_api(refresh_reuse_grace_seconds=0)
    first = await login(api)
    assert (await refresh(api, first.refresh_token)).status_code == 200
    assert error_of(await refresh(api, first.refresh_token)) == (401, "refresh_token_reused")


async def test_twenty_concurrent_refreshes_share_one_successor(api: httpx.AsyncClient) -> None:
    """Twenty tabs refreshing with one token at once: no 5xx, one successor, and it works."""
    tokens = await login(api)
    responses = await asyncio.gather(*(refresh(api, tokens.refresh_token) for _ in range(20)))

    assert [r.status_code for r in responses] == [200] * 20
    successors = {r.json()["refresh_token"] for r in responses}
    assert len(successors) == 1
    (successor,) = successors
    assert (await refresh(api, successor)).status_code == 200


async def test_refreshes_arriving_together_stay_apart(
    api: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """Sessions refreshed at the same moment each get their own successor, and a replayed
    token among them ends only its own session."""
    owners = [await login(api, email=f"user{n}@example.com") for n in range(6)]
    victim = owners[0]
    stolen = (await refresh(api, victim.refresh_token)).json()
    clock.advance(seconds=30)

    responses = await asyncio.gather(
        refresh(api, victim.refresh_token),  # replayed after the grace window
        *(refresh(api, owner.refresh_token) for owner in owners[1:]),
    )

    assert error_of(responses[0]) == (401, "refresh_token_reused")
    assert [r.status_code for r in responses[1:]] == [200] * 5
    assert len({r.json()["refresh_token"] for r in responses[1:]}) == 5
    for response in responses[1:]:
        assert (await refresh(api, response.json()["refresh_token"])).status_code == 200
    assert error_of(await refresh(api, stolen["refresh_token"])) == (401, "invalid_refresh_token")


async def test_refresh_token_expires_after_idle_lifetime(make_api, clock: FrozenClock) -> None:
    api = await make_api(refresh_ttl_seconds=3600)
    tokens = await login(api)
    clock.advance(seconds=3601)
    assert error_of(await refresh(api, tokens.refresh_token)) == (401, "refresh_token_expired")


async def test_remember_me_false_gives_the_shorter_lifetime(make_api, clock: FrozenClock) -> None:
    api = await make_api(session_ttl_seconds=600, refresh_ttl_seconds=86400)
    short = await login(api, remember_me=False)
    long = await login(api, create=False, remember_me=True)
    clock.advance(seconds=601)
    assert error_of(await refresh(api, short.refresh_token)) == (401, "refresh_token_expired")
    assert (await refresh(api, long.refresh_token)).status_code == 200


async def test_session_absolute_age_caps_refreshing(make_api, clock: FrozenClock) -> None:
    """However often it is refreshed, a session ends at KEYTURN_SESSION_MAX_AGE_SECONDS."""
    api = await make_api(
        session_max_age_seconds=3000, refresh_ttl_seconds=1000, session_ttl_seconds=1000
    )
    current = (await login(api)).refresh_token
    for _ in range(2):
        clock.advance(seconds=900)
        response = await refresh(api, current)
        assert response.status_code == 200
        current = response.json()["refresh_token"]
    clock.advance(seconds=900)
    current = (await refresh(api, current)).json()["refresh_token"]
    clock.advance(seconds=301)
    assert error_of(await refresh(api, current)) == (401, "refresh_token_expired")


async def test_access_token_is_not_a_refresh_token(api: httpx.AsyncClient) -> None:
    tokens = await login(api)
    assert error_of(await refresh(api, tokens.access_token)) == (401, "invalid_refresh_token")


async def test_refresh_token_is_not_an_access_token(api: httpx.AsyncClient) -> None:
    tokens = await login(api)
    me = await api.get("/api/auth/me", headers=bearer(tokens.refresh_token))
    assert error_of(me) == (401, "invalid_token")


async def test_unknown_and_malformed_refresh_tokens(api: httpx.AsyncClient) -> None:
    for value in ["ktr_" + "A" * 43, "", "x" * 5000, "ktr_\u0000"]:
        response = await api.post("/api/auth/refresh", json={"refresh_token": value})
        assert response.status_code in (401, 422), value
    assert error_of(await api.post("/api/auth/refresh", json={})) == (401, "invalid_refresh_token")


async def test_access_tokens_expire_with_jitter_below_ttl(make_api) -> None:
    """Lifetimes are shortened by a few percent at random so clients do not refresh in step."""
    api = await make_api(access_ttl_seconds=1000)
    tokens = await login(api)
    lifetimes = {tokens.expires_in}
    for _ in range(5):
        lifetimes.add((await refresh(api, tokens.refresh_token)).json()["expires_in"])
        tokens = await login(api, create=False)
    assert all(950 <= lifetime <= 1000 for lifetime in lifetimes)
    assert len(lifetimes) > 1


async def test_a_refresh_bound_to_the_user_agent_ends_the_session_from_another(
    make_api,
) -> None:
    """KEYTURN_REFRESH_BINDING=user_agent: the same browser refreshes; a token replayed with
    another User-Agent gets 401 invalid_refresh_token and the session is over for everyone."""
    api = await make_api(refresh_binding="user_agent")
    api.headers["User-Agent"] = "Phone/1.0"
    first = await login(api)
    same = await refresh(api, first.refresh_token)
    assert same.status_code == 200

    stolen = await api.post(
        "/api/auth/refresh",
        json={"refresh_token": same.json()["refresh_token"]},
        headers={"User-Agent": "curl/8.5"},
    )

    assert error_of(stolen) == (401, "invalid_refresh_token")
    me = await api.get("/api/auth/me", headers=bearer(same.json()["access_token"]))
    assert me.status_code == 401
    assert (await refresh(api, same.json()["refresh_token"])).status_code == 401
