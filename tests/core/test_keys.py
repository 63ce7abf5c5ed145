"""core.keys.public_key_from_jwk: JWKS entries become verify-only keys, odd ones are refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from keyturn.core import keys as keys_module
from keyturn.core.keys import (
    ASYMMETRIC_ALGORITHMS,
    KeyRing,
    generate_private_key_pem,
    load_signing_key,
    public_key_from_jwk,
)
from keyturn.core.tokens import mint_access_token, verify_access_token

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def signing_key(algorithm: str, kid: str = "k1") -> Any:
    return load_signing_key(
        kid=kid,
        algorithm=algorithm,
        private_key_pem=generate_private_key_pem(algorithm),
        created_at=NOW,
    )


@pytest.mark.parametrize("algorithm", ASYMMETRIC_ALGORITHMS)
def test_a_published_key_verifies_its_tokens(algorithm: str) -> None:
    key = signing_key(algorithm)
    public = public_key_from_jwk(key.public_jwk())
    assert (public.kid, public.algorithm, public.signing_key) == ("k1", algorithm, None)
    token, claims = mint_access_token(
        key=key,
        issuer="https://auth.example",
        audience="keyturn",
        subject="u1",
        session_id="s1",
        roles=("user",),
        client_id="keyturn",
        now=NOW,
        lifetime=timedelta(minutes=5),
    )
    verified = verify_access_token(
        token,
        keyring=KeyRing([public]),
        issuer="https://auth.example",
        audience="keyturn",
        now=NOW.timestamp(),
    )
    assert verified == claims


def test_refuses_odd_entries() -> None:
    good = signing_key("ES256").public_jwk()
    odd: list[dict[str, Any]] = [
        {**good, "kid": ""},
        {key: value for key, value in good.items() if key != "kid"},
        {**good, "alg": "HS256"},
        {**good, "alg": "none"},
        {**good, "use": "enc"},
        {**good, "d": "private-part"},
        {**good, "crv": "P-384"},
        {**good, "alg": "EdDSA"},
        {**good, "x": "not base64!"},
        {"kty": "oct", "k": "c2VjcmV0", "kid": "k1", "alg": "HS256"},
    ]
    for entry in odd:
        with pytest.raises(ValueError):
            public_key_from_jwk(entry)


def test_a_new_kid_never_begins_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kid starting with "-" would read as an option to `keyturn keys revoke KID`."""
    draws = iter(["-dashfirst", "-again", "plainkid"])
    monkeypatch.setattr(keys_module.secrets, "token_urlsafe", lambda _n: next(draws))
    assert keys_module.new_kid() == "plainkid"
