"""Access-token verification refuses every forgery an attacker would try."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from keyturn.core.keys import KeyRing, generate_private_key_pem, hmac_signing_key, load_signing_key
from keyturn.core.refresh import new_refresh_token
from keyturn.core.tokens import (
    AccessClaims,
    UnknownKeyError,
    VerifiedTokenCache,
    mint_access_token,
    verify_access_token,
)
from keyturn.errors import InvalidTokenError, TokenExpiredError

NOW = datetime(2030, 1, 1, tzinfo=UTC)
ISSUER = "https://auth.example.com"
AUDIENCE = "keyturn"


def make_key(algorithm: str = "EdDSA", kid: str = "k1"):
    return load_signing_key(
        kid=kid,
        algorithm=algorithm,
        private_key_pem=generate_private_key_pem(algorithm),
        created_at=NOW - timedelta(days=1),
    )


def mint(key, *, now: datetime = NOW, lifetime: int = 900, **overrides) -> str:
    values = dict(
        key=key,
        issuer=ISSUER,
        audience=AUDIENCE,
        subject="user-1",
        session_id="session-1",
        roles=("user",),
        client_id="keyturn",
        now=now,
        lifetime=timedelta(seconds=lifetime),
    )
    values.update(overrides)
    token, _claims = mint_access_token(**values)
    return token


def verify(token: str, ring: KeyRing, *, at: datetime = NOW, issuer: str = ISSUER) -> AccessClaims:
    return verify_access_token(
        token, keyring=ring, issuer=issuer, audience=AUDIENCE, now=at.timestamp()
    )


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def split(token: str) -> tuple[dict, dict, str]:
    header, payload, signature = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(header))),
        json.loads(base64.urlsafe_b64decode(pad(payload))),
        signature,
    )


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256", "RS256"])
def test_a_minted_token_verifies_with_its_claims(algorithm: str) -> None:
    """Every supported asymmetric algorithm round-trips with all contract claims."""
    key = make_key(algorithm)
    claims = verify(mint(key), KeyRing([key]))
    assert (claims.subject, claims.session_id, claims.roles) == ("user-1", "session-1", ("user",))
    header, payload, _ = split(mint(key))
    assert header == {"alg": algorithm, "kid": "k1", "typ": "at+jwt"}
    assert set(payload) == {
        *("iss", "sub", "aud", "exp", "iat", "jti", "sid", "client_id", "roles"),
        *("amr", "auth_time"),
    }
    assert (claims.amr, payload["amr"]) == (("pwd",), ["pwd"])
    assert claims.auth_time == payload["auth_time"] == payload["iat"]


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256", "RS256", "HS256"])
def test_a_minted_token_verifies_with_pyjwt_itself(algorithm: str) -> None:
    """Another service's JOSE library accepts the token as it is: framing, header, signature."""
    if algorithm == "HS256":
        key = hmac_signing_key(b"s" * 32, created_at=NOW)
    else:
        key = make_key(algorithm)
    token = mint(key)
    payload = jwt.decode(
        token,
        key.verifying_key,
        algorithms=[algorithm],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"verify_exp": False, "verify_iat": False},
    )
    assert jwt.get_unverified_header(token) == {"alg": algorithm, "kid": key.kid, "typ": "at+jwt"}
    assert (payload["sub"], payload["sid"], payload["roles"]) == ("user-1", "session-1", ["user"])


def test_alg_none_is_refused() -> None:
    """An unsigned token naming our kid is refused."""
    key = make_key()
    header, payload, _ = split(mint(key))
    forged = f"{b64({**header, 'alg': 'none'})}.{b64(payload)}."
    with pytest.raises(InvalidTokenError):
        verify(forged, KeyRing([key]))


def test_hs256_signed_with_the_public_key_is_refused() -> None:
    """Algorithm confusion: an HMAC over the public key bytes must not verify."""
    key = make_key("RS256")
    public_pem = key.verifying_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _, payload, _ = split(mint(key))
    import hashlib
    import hmac as hmac_module

    signing_input = f"{b64({'alg': 'HS256', 'kid': 'k1', 'typ': 'at+jwt'})}.{b64(payload)}"
    signature = hmac_module.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    forged = signing_input + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()
    with pytest.raises(InvalidTokenError):
        verify(forged, KeyRing([key]))


def test_stripped_signature_is_refused() -> None:
    key = make_key()
    header, payload, _ = mint(key).split(".")
    with pytest.raises(InvalidTokenError):
        verify(f"{header}.{payload}.", KeyRing([key]))


def test_tampered_payload_is_refused() -> None:
    """Raising one's own roles breaks the signature."""
    key = make_key()
    token = mint(key)
    header, _payload, signature = token.split(".")
    claims = split(token)[1]
    claims["roles"] = ["admin"]
    with pytest.raises(InvalidTokenError):
        verify(f"{header}.{b64(claims)}.{signature}", KeyRing([key]))


def test_token_signed_by_a_foreign_key_with_our_kid_is_refused() -> None:
    ours, theirs = make_key(kid="k1"), make_key(kid="k1")
    with pytest.raises(InvalidTokenError):
        verify(mint(theirs), KeyRing([ours]))


@pytest.mark.parametrize("kid", ["unknown", "../../etc/passwd", "k1' OR '1'='1", "", None, 7])
def test_unknown_or_path_like_kid_is_refused(kid: object) -> None:
    """The kid is only ever a lookup key in our own ring: nothing else is tried."""
    key = make_key()
    token = mint(key)
    _header, payload, signature = token.split(".")
    forged_header = {**split(token)[0], "kid": kid}
    with pytest.raises(InvalidTokenError):
        verify(f"{b64(forged_header)}.{payload}.{signature}", KeyRing([key]))


def test_unknown_kid_is_reported_as_such() -> None:
    with pytest.raises(UnknownKeyError):
        verify(mint(make_key(kid="elsewhere")), KeyRing([make_key()]))


def test_embedded_jwk_and_jku_are_ignored() -> None:
    """A token carrying its own key (jwk) or a key URL (jku) still needs our key."""
    attacker = make_key(kid="k1")
    token = jwt.encode(
        split(mint(attacker))[1],
        attacker.signing_key,
        algorithm="EdDSA",
        headers={
            "kid": "k1",
            "typ": "at+jwt",
            "jwk": attacker.public_jwk(),
            "jku": "https://evil.example/jwks.json",
        },
    )
    with pytest.raises(InvalidTokenError):
        verify(token, KeyRing([make_key(kid="k1")]))


def test_algorithm_must_match_the_keys_own() -> None:
    """An ES256 token presented under an EdDSA kid is refused before any signature check."""
    eddsa, es256 = make_key("EdDSA", kid="k1"), make_key("ES256", kid="k1")
    with pytest.raises(InvalidTokenError):
        verify(mint(es256), KeyRing([eddsa]))


@pytest.mark.parametrize(
    ("issuer", "audience"), [("https://evil.example", AUDIENCE), (ISSUER, "other-api")]
)
def test_wrong_issuer_or_audience_is_refused(issuer: str, audience: str) -> None:
    key = make_key()
    token = mint(key, issuer=issuer, audience=audience)
    with pytest.raises(InvalidTokenError):
        verify(token, KeyRing([key]))


def test_expired_token_says_expired_and_only_when_signature_is_good() -> None:
    key = make_key()
    token = mint(key, lifetime=60)
    with pytest.raises(TokenExpiredError):
        verify(token, KeyRing([key]), at=NOW + timedelta(seconds=60))
    header, payload, _ = token.split(".")
    with pytest.raises(InvalidTokenError) as refused:
        verify(f"{header}.{payload}.AAAA", KeyRing([key]), at=NOW + timedelta(seconds=60))
    assert not isinstance(refused.value, TokenExpiredError)


def test_a_token_lives_at_least_its_lifetime_from_the_moment_it_is_minted() -> None:
    """`exp` is whole seconds: rounded up, so a client counting `expires_in` from the answer
    never holds a token the server already calls expired (minted at .95, not gone at .00)."""
    key = make_key()
    minted_at = NOW + timedelta(seconds=12, milliseconds=950)
    token = mint(key, now=minted_at, lifetime=1)

    claims = verify(token, KeyRing([key]), at=minted_at + timedelta(milliseconds=999))

    assert claims.expires_at == int((NOW + timedelta(seconds=14)).timestamp())
    assert claims.issued_at == int((NOW + timedelta(seconds=12)).timestamp())
    with pytest.raises(TokenExpiredError):
        verify(token, KeyRing([key]), at=NOW + timedelta(seconds=14))


def test_token_from_the_future_is_refused() -> None:
    key = make_key()
    with pytest.raises(InvalidTokenError):
        verify(mint(key, now=NOW + timedelta(hours=1)), KeyRing([key]))


def test_wrong_typ_is_refused() -> None:
    """An ID token or any other JWT signed by us is not an access token."""
    key = make_key()
    payload = split(mint(key))[1]
    token = jwt.encode(
        payload, key.signing_key, algorithm="EdDSA", headers={"kid": "k1", "typ": "JWT"}
    )
    with pytest.raises(InvalidTokenError):
        verify(token, KeyRing([key]))


def test_refresh_token_is_not_an_access_token() -> None:
    with pytest.raises(InvalidTokenError):
        verify(new_refresh_token(), KeyRing([make_key()]))


@pytest.mark.parametrize("garbage", ["", "a.b.c", "..", "x" * 9000, "eyJ.eyJ.sig", "€.€.€"])
def test_garbage_is_invalid_not_an_exception(garbage: str) -> None:
    with pytest.raises(InvalidTokenError):
        verify(garbage, KeyRing([make_key()]))


@pytest.mark.parametrize(
    "bad",
    [
        {"roles": "admin"},
        {"sub": 5},
        {"exp": "soon"},
        {"sid": ""},
        {"amr": "mfa"},
        {"amr": ["pwd", 5]},
        {"auth_time": "now"},
        {"auth_time": True},
        {"auth_time": int(NOW.timestamp()) + 3600},
    ],
)
def test_malformed_claims_are_refused(bad: dict) -> None:
    key = make_key()
    payload = {**split(mint(key))[1], **bad}
    token = jwt.encode(
        payload, key.signing_key, algorithm="EdDSA", headers={"kid": "k1", "typ": "at+jwt"}
    )
    with pytest.raises(InvalidTokenError):
        verify(token, KeyRing([key]))


def test_hs256_ring_verifies_its_own_tokens_only() -> None:
    key = hmac_signing_key(b"k" * 32, created_at=NOW)
    other = hmac_signing_key(b"j" * 32, created_at=NOW)
    assert verify(mint(key), KeyRing([key])).subject == "user-1"
    with pytest.raises(InvalidTokenError):
        verify(mint(other), KeyRing([key]))


def test_cache_rechecks_expiry_and_is_bounded() -> None:
    key = make_key()
    cache = VerifiedTokenCache(max_entries=2)
    tokens = [mint(key, lifetime=60) for _ in range(3)]
    for token in tokens:
        cache.put(token, verify(token, KeyRing([key])))
    assert len(cache) == 2
    assert cache.get(tokens[0], now=NOW.timestamp()) is None
    assert cache.get(tokens[2], now=NOW.timestamp()) is not None
    with pytest.raises(TokenExpiredError):
        cache.get(tokens[2], now=(NOW + timedelta(seconds=61)).timestamp())


def test_rotated_ring_keeps_old_tokens_valid_and_signs_with_the_new_key() -> None:
    old = make_key(kid="old")
    new = load_signing_key(
        kid="new",
        algorithm="EdDSA",
        private_key_pem=generate_private_key_pem("EdDSA"),
        created_at=NOW + timedelta(seconds=10),
    )
    retired_old = load_signing_key(
        kid="old",
        algorithm="EdDSA",
        private_key_pem=old.signing_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        created_at=old.created_at,
        retired_at=NOW + timedelta(seconds=10),
        publish_until=NOW + timedelta(seconds=940),
    )
    ring = KeyRing([retired_old, new])
    assert ring.signing_key(now=NOW).kid == "old"  # the new key is published before it signs
    assert ring.signing_key(now=NOW + timedelta(seconds=11)).kid == "new"
    assert verify(mint(old), ring).subject == "user-1"
    assert {k["kid"] for k in ring.jwks(now=NOW)["keys"]} == {"old", "new"}
    assert {k["kid"] for k in ring.jwks(now=NOW + timedelta(seconds=941))["keys"]} == {"new"}


def test_a_second_factor_login_round_trips_amr_and_auth_time() -> None:
    """amr and auth_time travel as minted; `used_second_factor` reads `mfa` in amr."""
    key = make_key()
    logged_in = NOW - timedelta(minutes=7)
    claims = verify(mint(key, amr=("pwd", "otp", "mfa"), auth_time=logged_in), KeyRing([key]))
    assert claims.amr == ("pwd", "otp", "mfa")
    assert claims.auth_time == int(logged_in.timestamp())
    assert claims.used_second_factor
    assert not verify(mint(key), KeyRing([key])).used_second_factor


def test_a_token_without_amr_claims_no_method_and_an_old_login() -> None:
    """A token minted before amr existed verifies, claiming nothing: never "recent"."""
    key = make_key()
    payload = split(mint(key))[1]
    del payload["amr"], payload["auth_time"]
    token = jwt.encode(
        payload, key.signing_key, algorithm="EdDSA", headers={"kid": "k1", "typ": "at+jwt"}
    )
    claims = verify(token, KeyRing([key]))
    assert (claims.amr, claims.auth_time) == ((), 0)
