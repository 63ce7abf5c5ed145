"""Signing keys and the key ring: which key signs now, which public keys stay published."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt import PyJWK
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from jwt.exceptions import InvalidKeyError, PyJWKError

ASYMMETRIC_ALGORITHMS = ("EdDSA", "ES256", "RS256")


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One key: `signing_key` signs, `verifying_key` verifies (the same bytes for HS256)."""

    kid: str
    algorithm: str
    signing_key: Any
    verifying_key: Any
    created_at: datetime
    retired_at: datetime | None = None
    publish_until: datetime | None = None

    @property
    def is_asymmetric(self) -> bool:
        return self.algorithm in ASYMMETRIC_ALGORITHMS

    def is_published(self, now: datetime) -> bool:
        return self.publish_until is None or now < self.publish_until

    def public_jwk(self) -> dict[str, Any]:
        """The public half as a JWK (RFC 7517), with kid, alg and use."""
        if not self.is_asymmetric:
            raise ValueError("a symmetric key has no public half")
        jwk: dict[str, Any]
        if self.algorithm == "EdDSA":
            jwk = OKPAlgorithm.to_jwk(self.verifying_key, as_dict=True)
        elif self.algorithm == "ES256":
            jwk = ECAlgorithm.to_jwk(self.verifying_key, as_dict=True)
        else:
            jwk = RSAAlgorithm.to_jwk(self.verifying_key, as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}


def generate_private_key_pem(algorithm: str) -> bytes:
    """A fresh private key for `algorithm`, as unencrypted PKCS#8 PEM."""
    private_key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    if algorithm == "EdDSA":
        private_key = ed25519.Ed25519PrivateKey.generate()
    elif algorithm == "ES256":
        private_key = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == "RS256":
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    else:
        raise ValueError(f"cannot generate a key for {algorithm}")
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def new_kid() -> str:
    return secrets.token_urlsafe(12)


def load_signing_key(
    *,
    kid: str,
    algorithm: str,
    private_key_pem: bytes,
    created_at: datetime,
    retired_at: datetime | None = None,
    publish_until: datetime | None = None,
) -> SigningKey:
    private_key = serialization.load_pem_private_key(private_key_pem, password=None)
    expected: type[Any] = {
        "EdDSA": ed25519.Ed25519PrivateKey,
        "ES256": ec.EllipticCurvePrivateKey,
        "RS256": rsa.RSAPrivateKey,
    }[algorithm]
    if not isinstance(private_key, expected):
        raise ValueError(f"key {kid} is not a {algorithm} key")
    return SigningKey(
        kid=kid,
        algorithm=algorithm,
        signing_key=private_key,
        verifying_key=private_key.public_key(),
        created_at=created_at,
        retired_at=retired_at,
        publish_until=publish_until,
    )


def hmac_signing_key(secret: bytes, *, created_at: datetime) -> SigningKey:
    """The HS256 key from KEYTURN_SECRET_KEY; its kid names the key without revealing it."""
    kid = "hs-" + hashlib.sha256(b"keyturn-kid:" + secret).hexdigest()[:16]
    return SigningKey(
        kid=kid,
        algorithm="HS256",
        signing_key=secret,
        verifying_key=secret,
        created_at=created_at,
    )


class KeyRing:
    """The keys a server trusts, looked up by `kid`; the newest key in force signs."""

    def __init__(self, keys: Iterable[SigningKey]) -> None:
        self._by_kid: Mapping[str, SigningKey] = {key.kid: key for key in keys}
        self._newest_first = sorted(
            self._by_kid.values(), key=lambda key: key.created_at, reverse=True
        )

    def signing_key(self, *, now: datetime) -> SigningKey:
        """The newest key whose time has come and has not been retired at `now`."""
        for key in self._newest_first:
            if key.created_at <= now and (key.retired_at is None or key.retired_at > now):
                return key
        for key in self._newest_first:  # a clock behind the key's creation: use the newest
            if key.retired_at is None:
                return key
        raise LookupError("the key ring has no active signing key")

    def find(self, kid: str) -> SigningKey | None:
        return self._by_kid.get(kid)

    def __contains__(self, kid: object) -> bool:
        return kid in self._by_kid

    def __len__(self) -> int:
        return len(self._by_kid)

    def jwks(self, *, now: datetime) -> dict[str, list[dict[str, Any]]]:
        """The JWKS document (RFC 7517 §5): public keys still published at `now`."""
        return {
            "keys": [
                key.public_jwk()
                for key in sorted(self._by_kid.values(), key=lambda key: key.created_at)
                if key.is_asymmetric and key.is_published(now)
            ]
        }


_EPOCH = datetime.fromtimestamp(0, UTC)
_JWK_TYPES = {"EdDSA": ("OKP", "Ed25519"), "ES256": ("EC", "P-256"), "RS256": ("RSA", None)}


def public_key_from_jwk(jwk: Mapping[str, Any]) -> SigningKey:
    """A verify-only key from one JWKS entry (RFC 7517): asymmetric, with `kid` and `alg`.

    Raises ValueError for a key that is symmetric, not for signatures, or malformed.
    """
    kid, algorithm = jwk.get("kid"), jwk.get("alg")
    if not isinstance(kid, str) or not kid:
        raise ValueError("the JWK has no kid")
    if algorithm not in ASYMMETRIC_ALGORITHMS:
        raise ValueError(f"the JWK's alg is not one of {', '.join(ASYMMETRIC_ALGORITHMS)}")
    if jwk.get("use", "sig") != "sig":
        raise ValueError("the JWK is not a signature key")
    if "d" in jwk:
        raise ValueError("the JWK holds a private key")
    if (jwk.get("kty"), jwk.get("crv")) != _JWK_TYPES[algorithm]:
        raise ValueError(f"the JWK's key type does not fit {algorithm}")
    try:
        key = PyJWK(dict(jwk), algorithm=algorithm)
    except (PyJWKError, InvalidKeyError, ValueError, TypeError) as exc:
        raise ValueError("the JWK is malformed") from exc
    return SigningKey(
        kid=kid,
        algorithm=algorithm,
        signing_key=None,
        verifying_key=key.key,
        created_at=_EPOCH,
    )
