"""What Keyturn refuses in a provider's answer, proved with an issuer whose ID tokens each
test writes: another nonce, audience, issuer or key, no signature, an expired token. Each is
refused (/login?error=invalid_id_token) and signs nobody in; the same flow with a sound token
signs in, so the refusals are the checks at work."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest

from keyturn.clock import FrozenClock
from tests.support.api import register
from tests.support.environment import ApiFactory
from tests.support.stand_ins import SigningKey, TestIssuer

CLIENT_ID = "keyturn-client"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2030, 1, 1, tzinfo=UTC))


@pytest.fixture
def issuer() -> Iterator[TestIssuer]:
    with TestIssuer().running() as running:
        yield running


@pytest.fixture
async def api(make_api: ApiFactory, issuer: TestIssuer) -> httpx.AsyncClient:
    client: httpx.AsyncClient = await make_api(
        oidc_providers=[
            {
                "id": "corp",
                "name": "Corp",
                "issuer": issuer.issuer,
                "client_id": CLIENT_ID,
                "client_secret": "corp-secret",
            }
        ]
    )
    return client


def claims_for(
    issuer: TestIssuer, clock: FrozenClock, nonce: str, **changes: Any
) -> dict[str, Any]:
    now = int(clock.timestamp())
    claims = {
        "iss": issuer.issuer,
        "sub": "248289761001",
        "aud": CLIENT_ID,
        "exp": now + 300,
        "iat": now,
        "nonce": nonce,
        "email": "jane@example.com",
        "email_verified": True,
    }
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


async def callback_with(
    api: httpx.AsyncClient, issuer: TestIssuer, make_token: Any
) -> httpx.Response:
    """Start a sign-in, let the issuer answer the token request with `make_token(nonce)`,
    and come back to the callback as the provider would send the browser."""
    started = await api.get("/api/auth/oidc/corp/start")
    query = httpx.URL(started.headers["location"]).params
    issuer.id_token = make_token(query["nonce"])
    return await api.get(
        "/api/auth/oidc/corp/callback", params={"code": "the-code", "state": query["state"]}
    )


def is_signed_in(response: httpx.Response) -> bool:
    return any(c.startswith("access_token=") for c in response.headers.get_list("set-cookie"))


async def test_a_sound_id_token_signs_in(
    api: httpx.AsyncClient, issuer: TestIssuer, clock: FrozenClock
) -> None:
    response = await callback_with(
        api, issuer, lambda nonce: issuer.keys[0].sign(claims_for(issuer, clock, nonce))
    )

    assert response.headers["location"] == "/dashboard"
    assert is_signed_in(response)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"nonce": "another-sign-in"}, id="nonce"),
        pytest.param({"nonce": None}, id="no-nonce"),
        pytest.param({"aud": "someone-else"}, id="aud"),
        pytest.param({"aud": ["someone-else", CLIENT_ID]}, id="aud-shared-without-azp"),
        pytest.param({"iss": "https://accounts.google.com"}, id="iss"),
        pytest.param({"exp": 1893455700 - 600}, id="expired"),
        pytest.param({"iat": 1893456000 + 3600}, id="issued-in-the-future"),
        pytest.param({"sub": None}, id="no-sub"),
    ],
)
async def test_an_id_token_with_wrong_claims_is_refused(
    api: httpx.AsyncClient, issuer: TestIssuer, clock: FrozenClock, changes: dict[str, Any]
) -> None:
    def token(nonce: str) -> str:
        claims = claims_for(issuer, clock, nonce)
        claims.update(changes)
        return issuer.keys[0].sign({k: v for k, v in claims.items() if v is not None})

    response = await callback_with(api, issuer, token)

    assert response.headers["location"] == "/login?error=invalid_id_token"
    assert not is_signed_in(response)
    assert (await api.get("/api/auth/me")).status_code == 401


async def test_an_id_token_signed_by_another_key_is_refused(
    api: httpx.AsyncClient, issuer: TestIssuer, clock: FrozenClock
) -> None:
    """Same kid, another private key: the signature does not verify."""
    forger = SigningKey(issuer.keys[0].kid)

    response = await callback_with(
        api, issuer, lambda nonce: forger.sign(claims_for(issuer, clock, nonce))
    )

    assert response.headers["location"] == "/login?error=invalid_id_token"
    assert not is_signed_in(response)


@pytest.mark.parametrize("algorithm", ["none", "HS256"])
async def test_an_unsigned_or_symmetric_id_token_is_refused(
    api: httpx.AsyncClient, issuer: TestIssuer, clock: FrozenClock, algorithm: str
) -> None:
    """`alg: none`, and HS256 keyed with the client secret (which the client itself knows)."""

    def token(nonce: str) -> str:
        claims = claims_for(issuer, clock, nonce)
        key = "corp-secret" * 4 if algorithm == "HS256" else None
        return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": "key-1"})

    response = await callback_with(api, issuer, token)

    assert response.headers["location"] == "/login?error=invalid_id_token"


async def test_a_rotated_key_is_fetched_once_and_a_made_up_kid_is_refused(
    api: httpx.AsyncClient, issuer: TestIssuer, clock: FrozenClock
) -> None:
    """An unknown kid fetches the keys again (the provider rotated); within the next minute
    another unknown kid does not make Keyturn ask again."""
    first = await callback_with(
        api, issuer, lambda nonce: issuer.keys[0].sign(claims_for(issuer, clock, nonce))
    )
    assert first.headers["location"] == "/dashboard"
    issuer.keys.append(SigningKey("key-2"))
    api.cookies.clear()

    rotated = await callback_with(
        api, issuer, lambda nonce: issuer.keys[1].sign(claims_for(issuer, clock, nonce))
    )
    api.cookies.clear()
    made_up = await callback_with(
        api, issuer, lambda nonce: SigningKey("key-3").sign(claims_for(issuer, clock, nonce))
    )

    assert rotated.headers["location"] == "/dashboard"
    assert made_up.headers["location"] == "/login?error=invalid_id_token"
    assert issuer.calls.count("GET /jwks") == 2


async def test_email_verified_must_be_a_json_true(
    api: httpx.AsyncClient, issuer: TestIssuer, clock: FrozenClock
) -> None:
    """ "true" as a string vouches for nothing: no new account is verified by it."""
    response = await callback_with(
        api,
        issuer,
        lambda nonce: issuer.keys[0].sign(claims_for(issuer, clock, nonce, email_verified="true")),
    )

    assert response.headers["location"] == "/dashboard"
    me = (await api.get("/api/auth/me")).json()["user"]
    assert me["email_verified"] is False


async def test_a_provider_error_in_the_callback_is_shown_not_trusted(
    api: httpx.AsyncClient, issuer: TestIssuer
) -> None:
    started = await api.get("/api/auth/oidc/corp/start")
    state = httpx.URL(started.headers["location"]).params["state"]

    response = await api.get(
        "/api/auth/oidc/corp/callback",
        params={"error": "server_error", "error_description": "<script>", "state": state},
    )

    assert response.headers["location"] == "/login?error=provider_error"
    assert "POST /token" not in issuer.calls


async def test_nothing_is_linked_by_a_refused_token(
    api: httpx.AsyncClient, issuer: TestIssuer, clock: FrozenClock
) -> None:
    """A forged token naming the address of an existing verified account links nothing:
    the account's owner still has no identity after signing in."""
    ok = await callback_with(
        api, issuer, lambda nonce: issuer.keys[0].sign(claims_for(issuer, clock, nonce))
    )
    assert ok.status_code == 302
    api.cookies.clear()
    forged = await callback_with(
        api,
        issuer,
        lambda nonce: SigningKey("key-1").sign(claims_for(issuer, clock, nonce, sub="intruder")),
    )
    assert forged.headers["location"] == "/login?error=invalid_id_token"
    await register(api, "other@example.com")
