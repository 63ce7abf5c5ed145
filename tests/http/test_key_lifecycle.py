"""Signing keys past their publishing window, revoked, or signing tokens that live too long
verify nothing: a leaked private key stops working."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import httpx
import jwt
import pytest

from keyturn.clock import FrozenClock
from tests.support.api import Login, bearer, login
from tests.support.environment import TEST_ISSUER, ApiFactory, RedisDatabase

ACCESS_TTL = 900
SKEW = 30
ACTIVATION_DELAY = 10


def services_of(api: httpx.AsyncClient) -> Any:
    return api.app.state.services  # type: ignore[attr-defined]


def claims_of(access_token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(access_token, options={"verify_signature": False})
    return claims


def forge(
    api: httpx.AsyncClient,
    clock: FrozenClock,
    tokens: Login,
    *,
    kid: str,
    lifetime: int = ACCESS_TTL,
    issued_at: int | None = None,
) -> str:
    """An admin token for the logged-in user's live session, signed with `kid`'s private key
    as someone holding a copy of it would."""
    private_key = services_of(api).keyring.ring.find(kid).signing_key
    iat = int(clock.timestamp()) if issued_at is None else issued_at
    claims = {
        **claims_of(tokens.access_token),
        "iat": iat,
        "exp": iat + lifetime,
        "jti": secrets.token_urlsafe(16),
        "roles": ["user", "admin"],
    }
    return jwt.encode(claims, private_key, algorithm="EdDSA", headers={"kid": kid, "typ": "at+jwt"})


async def me(api: httpx.AsyncClient, access_token: str) -> tuple[int, str]:
    response = await api.get("/api/auth/me", headers=bearer(access_token))
    return response.status_code, str(response.json().get("error", ""))


async def published_kids(api: httpx.AsyncClient) -> set[str]:
    return {key["kid"] for key in (await api.get("/.well-known/jwks.json")).json()["keys"]}


async def test_token_forged_with_a_retired_key_is_refused(
    make_api: ApiFactory, clock: FrozenClock
) -> None:
    """After a rotation and the old key's publishing window, its private key signs nothing
    the server accepts, whatever the token claims."""
    api = await make_api(access_ttl_seconds=ACCESS_TTL)
    tokens = await login(api)
    old_kid = jwt.get_unverified_header(tokens.access_token)["kid"]
    services_of(api).keyring.rotate()
    clock.advance(seconds=ACTIVATION_DELAY + ACCESS_TTL + SKEW + 1)

    forged = forge(api, clock, tokens, kid=old_kid)

    assert old_kid not in await published_kids(api)
    assert await me(api, forged) == (401, "invalid_token")


async def test_old_key_still_verifies_its_tokens_within_its_window(
    make_api: ApiFactory, clock: FrozenClock
) -> None:
    """A rotation does not log anyone out: tokens of the old key work until they expire."""
    api = await make_api(access_ttl_seconds=ACCESS_TTL)
    tokens = await login(api)
    old_kid = jwt.get_unverified_header(tokens.access_token)["kid"]
    services_of(api).keyring.rotate()
    clock.advance(seconds=ACTIVATION_DELAY + 60)

    assert (await me(api, tokens.access_token))[0] == 200
    assert old_kid in await published_kids(api)
    fresh = await login(api, create=False)
    assert jwt.get_unverified_header(fresh.access_token)["kid"] != old_kid


async def test_a_cached_token_of_a_retired_key_is_refused_once_its_window_ends(
    make_api: ApiFactory, clock: FrozenClock
) -> None:
    """A forged token verified just before the window closed is not trusted from the cache
    after it."""
    api = await make_api(access_ttl_seconds=ACCESS_TTL)
    tokens = await login(api)
    old_kid = jwt.get_unverified_header(tokens.access_token)["kid"]
    services_of(api).keyring.rotate()
    clock.advance(seconds=ACTIVATION_DELAY + ACCESS_TTL + SKEW - 5)
    forged = forge(api, clock, tokens, kid=old_kid)
    assert (await me(api, forged))[0] == 200  # still inside the window: indistinguishable

    clock.advance(seconds=10)

    assert await me(api, forged) == (401, "invalid_token")


async def test_token_living_longer_than_the_access_ttl_is_refused(
    make_api: ApiFactory, clock: FrozenClock
) -> None:
    """A token signed by the current key but with a 24 h lifetime was not minted by Keyturn."""
    api = await make_api(access_ttl_seconds=ACCESS_TTL)
    tokens = await login(api)
    kid = jwt.get_unverified_header(tokens.access_token)["kid"]

    forged = forge(api, clock, tokens, kid=kid, lifetime=24 * 3600)
    within = forge(api, clock, tokens, kid=kid, lifetime=ACCESS_TTL + SKEW)

    assert await me(api, forged) == (401, "invalid_token")
    assert (await me(api, within))[0] == 200


async def test_revoked_key_is_refused_at_once_on_every_instance(
    make_api: ApiFactory, clock: FrozenClock
) -> None:
    """Revoking the signing key in force: its tokens fail on both instances (cached ones
    too), it leaves the JWKS, and a new key signs from then on."""
    first = await make_api()
    second = await make_api()
    tokens = await login(first)
    kid = jwt.get_unverified_header(tokens.access_token)["kid"]
    assert (await me(second, tokens.access_token))[0] == 200  # now in second's cache

    services = services_of(first)
    services.keyring.revoke(kid, revocation=services.revocation)
    services_of(second).feed.sync_now()  # one poll of the feed

    for api in (first, second):
        assert await me(api, tokens.access_token) == (401, "invalid_token")
        assert kid not in await published_kids(api)
    fresh = await login(second, create=False)
    assert jwt.get_unverified_header(fresh.access_token)["kid"] != kid
    assert (await me(first, fresh.access_token))[0] == 200


async def test_issuer_and_audience_of_forged_tokens_still_matter(
    make_api: ApiFactory, clock: FrozenClock
) -> None:
    """The helper forges tokens the server would otherwise accept (a control)."""
    api = await make_api()
    tokens = await login(api)
    assert claims_of(tokens.access_token)["iss"] == TEST_ISSUER
    kid = jwt.get_unverified_header(tokens.access_token)["kid"]
    assert (await me(api, forge(api, clock, tokens, kid=kid)))[0] == 200


@pytest.mark.redis
async def test_revoked_key_reaches_another_instance_through_redis_at_once(
    make_api: ApiFactory, redis_database: RedisDatabase
) -> None:
    """With Redis, a key revocation reaches the other instance long before its next poll of
    the database feed (5 s here), as a logout does."""
    settings = {
        "redis_url": redis_database.url,
        "revocation_poll_seconds": 5,
        "revocation_max_staleness_seconds": 30,
    }
    first = await make_api(**settings)
    second = await make_api(**settings)
    await asyncio.sleep(0.3)  # both subscribed
    tokens = await login(first)
    kid = jwt.get_unverified_header(tokens.access_token)["kid"]
    assert (await me(second, tokens.access_token))[0] == 200

    services = services_of(first)
    services.keyring.revoke(kid, revocation=services.revocation)

    started = time.monotonic()
    while (await me(second, tokens.access_token))[0] == 200:
        assert time.monotonic() - started < 1.0, "the revoked key still verifies"
        await asyncio.sleep(0.02)
    assert await me(second, tokens.access_token) == (401, "invalid_token")
