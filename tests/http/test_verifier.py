"""keyturn.verify against the app in process: the checks, the JWKS cache, Redis, FastAPI deps."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI

import keyturn.verify
from keyturn.clock import FrozenClock
from keyturn.core.keys import generate_private_key_pem, load_signing_key
from keyturn.core.tokens import mint_access_token
from keyturn.errors import ServiceUnavailableError
from keyturn.verify import AccessClaims, InvalidTokenError, JwksCache, TokenExpiredError, Verifier
from keyturn.verify.deps import KeyturnBearer, install_error_handler
from tests.support.api import DEFAULT_PASSWORD, bearer, login
from tests.support.environment import TEST_ISSUER, ApiFactory
from tests.support.mfa import code_for, enrol, start_login


class Ticker:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def jwks_transport(api: httpx.AsyncClient) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=api.app)  # type: ignore[attr-defined]


def verifier_for(
    api: httpx.AsyncClient, clock: FrozenClock, *, ticker: Ticker | None = None, **options: Any
) -> Verifier:
    jwks = JwksCache(
        TEST_ISSUER + "/.well-known/jwks.json",
        async_transport=jwks_transport(api),
        monotonic=ticker or Ticker(),
    )
    return Verifier(TEST_ISSUER, jwks=jwks, clock=clock.timestamp, **options)


def forge(api: httpx.AsyncClient, clock: FrozenClock, **changes: Any) -> str:
    """A token signed by the server's own current key, with some claims changed."""
    services = api.app.state.services  # type: ignore[attr-defined]
    values: dict[str, Any] = {
        "key": services.keyring.ring.signing_key(now=clock.now()),
        "issuer": TEST_ISSUER,
        "audience": "keyturn",
        "subject": "someone",
        "session_id": "s1",
        "roles": ("user",),
        "client_id": "keyturn",
        "now": clock.now(),
        "lifetime": timedelta(minutes=5),
    }
    values.update(changes)
    token, _claims = mint_access_token(**values)
    return token


async def test_accepts_a_keyturn_access_token(api: httpx.AsyncClient, clock: FrozenClock) -> None:
    tokens = await login(api)
    verifier = verifier_for(api, clock)

    claims = await verifier.averify(tokens.access_token)

    assert claims.subject == tokens.user["id"]
    assert claims.roles == ("user",)
    assert (await verifier.averify(tokens.access_token)) == claims  # from the cache
    assert verifier.jwks.fetches == 1


async def test_expired_token_is_token_expired(api: httpx.AsyncClient, clock: FrozenClock) -> None:
    tokens = await login(api)
    verifier = verifier_for(api, clock)
    await verifier.averify(tokens.access_token)
    clock.advance(seconds=901)
    with pytest.raises(TokenExpiredError):
        await verifier.averify(tokens.access_token)


@pytest.mark.parametrize(
    "changes",
    [
        {"issuer": "http://evil.test"},
        {"audience": "another-service"},
    ],
)
async def test_wrong_issuer_or_audience_is_refused(
    api: httpx.AsyncClient, clock: FrozenClock, changes: dict[str, Any]
) -> None:
    await login(api)
    with pytest.raises(InvalidTokenError):
        await verifier_for(api, clock).averify(forge(api, clock, **changes))


async def test_a_key_with_a_stolen_kid_is_refused(
    api: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """A token signed by another key that names the real kid fails the signature check."""
    services = api.app.state.services  # type: ignore[attr-defined]
    real = services.keyring.ring.signing_key(now=clock.now())
    impostor = load_signing_key(
        kid=real.kid,
        algorithm=real.algorithm,
        private_key_pem=generate_private_key_pem(real.algorithm),
        created_at=clock.now(),
    )
    with pytest.raises(InvalidTokenError):
        await verifier_for(api, clock).averify(forge(api, clock, key=impostor))


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not a token",
        "a.b.c",
        jwt.encode({"sub": "x"}, key=None, algorithm="none"),  # type: ignore[arg-type]
        jwt.encode({"sub": "x"}, "a" * 32, algorithm="HS256", headers={"typ": "at+jwt"}),
    ],
)
async def test_malformed_and_unsigned_tokens_are_refused(
    api: httpx.AsyncClient, clock: FrozenClock, token: str
) -> None:
    with pytest.raises(InvalidTokenError):
        await verifier_for(api, clock).averify(token)


async def test_a_flood_of_unknown_kids_fetches_the_jwks_once_per_interval(
    api: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """Made-up kids cost one refetch per interval, whatever their number."""
    await login(api)
    ticker = Ticker()
    verifier = verifier_for(api, clock, ticker=ticker)
    await verifier.jwks.akeyring()
    ticker.now += 60
    for number in range(200):
        stranger = load_signing_key(
            kid=f"made-up-{number}",
            algorithm="EdDSA",
            private_key_pem=generate_private_key_pem("EdDSA"),
            created_at=clock.now(),
        )
        with pytest.raises(InvalidTokenError):
            await verifier.averify(forge(api, clock, key=stranger))
    assert verifier.jwks.fetches == 2
    ticker.now += verifier.jwks.min_refetch_seconds
    with pytest.raises(InvalidTokenError):
        await verifier.averify(forge(api, clock, key=stranger))
    assert verifier.jwks.fetches == 3


async def test_a_rotated_key_is_fetched_when_its_first_token_arrives(
    api: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """After `keyturn keys rotate`, tokens signed by the new key verify: the unknown kid
    triggers a refetch (Keyturn publishes the key before it signs with it)."""
    first = await login(api)
    ticker = Ticker()
    verifier = verifier_for(api, clock, ticker=ticker)
    await verifier.averify(first.access_token)
    services = api.app.state.services  # type: ignore[attr-defined]
    services.keyring.rotate()
    clock.advance(seconds=11)
    ticker.now += 11
    second = await login(api, create=False)
    assert jwt.get_unverified_header(second.access_token)["kid"] not in verifier.jwks.keyring()

    claims = await verifier.averify(second.access_token)

    assert claims.subject == first.user["id"]
    assert verifier.jwks.fetches == 2
    await verifier.averify(first.access_token)  # the old key stays published


async def test_unreachable_jwks_is_service_unavailable(clock: FrozenClock) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    verifier = Verifier(
        TEST_ISSUER, async_http_transport=httpx.MockTransport(refuse), clock=clock.timestamp
    )
    with pytest.raises(ServiceUnavailableError):
        await verifier.averify("a.b.c")


def test_sync_verify_fetches_keys_with_a_blocking_client(clock: FrozenClock) -> None:
    """verify() (no event loop) reads a JWKS through httpx.Client."""
    signing = load_signing_key(
        kid="k1",
        algorithm="ES256",
        private_key_pem=generate_private_key_pem("ES256"),
        created_at=clock.now(),
    )
    jwks = {"keys": [signing.public_jwk()]}
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=jwks))
    verifier = Verifier("https://auth.example", http_transport=transport, clock=clock.timestamp)
    token, _ = mint_access_token(
        key=signing,
        issuer="https://auth.example",
        audience="keyturn",
        subject="u1",
        session_id="s1",
        roles=("user", "admin"),
        client_id="keyturn",
        now=clock.now(),
        lifetime=timedelta(minutes=1),
    )
    assert verifier.verify(token).roles == ("user", "admin")


@pytest.mark.redis
async def test_with_redis_a_logout_is_refused_at_once(
    make_api: ApiFactory, clock: FrozenClock, redis_url: str
) -> None:
    """With Keyturn's Redis, a token whose session ended is refused by the verifier at once,
    and so is a token revoked alone (RFC 7009)."""
    api = await make_api(redis_url=redis_url)
    tokens = await login(api)
    other = await login(api, create=False)
    verifier = verifier_for(api, clock, redis_url=redis_url)
    await verifier.averify(tokens.access_token)
    await verifier.averify(other.access_token)

    await api.post("/api/auth/logout", headers=bearer(tokens.access_token))
    await api.post("/oauth/revoke", data={"token": other.access_token})

    for token in (tokens.access_token, other.access_token):
        with pytest.raises(InvalidTokenError):
            await verifier.averify(token)
    await verifier.aclose()


async def test_redis_down_fails_closed(api: httpx.AsyncClient, clock: FrozenClock) -> None:
    """Asked to check revocations and unable to, the verifier refuses rather than guesses."""
    tokens = await login(api)
    verifier = verifier_for(api, clock, redis_url="redis://127.0.0.1:1/0")
    with pytest.raises(ServiceUnavailableError):
        await verifier.averify(tokens.access_token)
    await verifier.aclose()


async def test_fastapi_dependencies(api: httpx.AsyncClient, clock: FrozenClock) -> None:
    """KeyturnBearer gives the principal; requires_role guards; refusals read like Keyturn's."""
    verifier = verifier_for(api, clock)
    principal = KeyturnBearer(verifier)
    service = FastAPI()
    install_error_handler(service)

    @service.get("/notes")
    async def notes(claims: AccessClaims = Depends(principal)) -> dict[str, str]:  # noqa: B008
        return {"owner": claims.subject}

    @service.get("/reports", dependencies=[Depends(principal.requires_role("admin"))])
    async def reports() -> dict[str, str]:
        return {}

    tokens = await login(api)
    transport = httpx.ASGITransport(app=service)
    async with httpx.AsyncClient(transport=transport, base_url="http://notes.test") as notes_api:
        ok = await notes_api.get("/notes", headers=bearer(tokens.access_token))
        assert ok.json() == {"owner": tokens.user["id"]}
        missing = await notes_api.get("/notes")
        assert (missing.status_code, missing.json()["error"]) == (401, "missing_token")
        assert missing.headers["www-authenticate"] == 'Bearer realm="keyturn"'
        garbled = await notes_api.get("/notes", headers={"Authorization": "Token abc"})
        assert (garbled.status_code, garbled.json()["error"]) == (401, "invalid_token")
        forbidden = await notes_api.get("/reports", headers=bearer(tokens.access_token))
        assert (forbidden.status_code, forbidden.json()["error"]) == (403, "insufficient_role")
        clock.advance(seconds=901)
        expired = await notes_api.get("/notes", headers=bearer(tokens.access_token))
        assert (expired.status_code, expired.json()["error"]) == (401, "token_expired")


async def test_requires_mfa_lets_only_second_factor_logins_through(
    api: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """The claims expose amr and auth_time; requires_mfa answers 403 without "mfa" in amr."""
    verifier = verifier_for(api, clock)
    principal = KeyturnBearer(verifier)
    service = FastAPI()
    install_error_handler(service)

    @service.post("/payouts", dependencies=[Depends(principal.requires_mfa())])
    async def payouts() -> dict[str, str]:
        return {"paid": "yes"}

    password_only = await login(api)
    app = await enrol(api, password_only.access_token, clock)
    step = await start_login(api, "ada@example.com", DEFAULT_PASSWORD)
    done = await api.post(
        "/api/auth/mfa/verify",
        json={"mfa_token": step["mfa_token"], "code": code_for(app.secret, clock.timestamp())},
    )
    with_mfa = done.json()["access_token"]
    claims = await verifier.averify(with_mfa)
    assert (claims.amr, claims.auth_time) == (("pwd", "otp", "mfa"), int(clock.timestamp()))
    transport = httpx.ASGITransport(app=service)
    async with httpx.AsyncClient(transport=transport, base_url="http://pay.test") as pay_api:
        refused = await pay_api.post("/payouts", headers=bearer(password_only.access_token))
        assert (refused.status_code, refused.json()["error"]) == (
            403,
            "insufficient_user_authentication",
        )
        assert "insufficient_user_authentication" in refused.headers["www-authenticate"]
        paid = await pay_api.post("/payouts", headers=bearer(with_mfa))
        assert paid.json() == {"paid": "yes"}


def test_public_api_is_pinned() -> None:
    assert keyturn.verify.__all__ == [
        "AccessClaims",
        "InvalidTokenError",
        "JwksCache",
        "KeyturnError",
        "TokenExpiredError",
        "Verifier",
    ]
