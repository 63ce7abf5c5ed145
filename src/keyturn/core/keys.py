"""Signing keys and the key ring: which key signs now, which public keys stay published."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
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
    revoked_at: datetime | None = None

    @property
    def is_asymmetric(self) -> bool:
        return self.algorithm in ASYMMETRIC_ALGORITHMS

    @property
    def trusted_until(self) -> float:
        """The moment (POSIX seconds) from which this key verifies nothing.

        A retired key stops at the end of its publishing window: by then every token it
        signed has expired, so a token still naming it was forged with a leaked key.
        """
        if self.revoked_at is not None:
            return -math.inf
        if self.publish_until is None:
            return math.inf
        return self.publish_until.timestamp()

    def is_published(self, now: datetime) -> bool:
        if self.revoked_at is not None:
            return False
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
    return _pkcs8_pem(private_key)


def _pkcs8_pem(private_key: Any) -> bytes:
    return private_key.private_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def new_kid() -> str:
    """A random kid that never begins with "-", so `keyturn keys revoke KID` cannot read it
    as an option."""
    while (kid := secrets.token_urlsafe(12)).startswith("-"):
        pass
    return kid


_PRIVATE_KEY_TYPES: dict[str, type[Any]] = {
    "EdDSA": ed25519.Ed25519PrivateKey,
    "ES256": ec.EllipticCurvePrivateKey,
    "RS256": rsa.RSAPrivateKey,
}
MIN_RSA_KEY_BITS = 2048


def normalize_private_key_pem(pem: bytes, *, algorithm: str) -> bytes:
    """An operator's private key as unencrypted PKCS#8 PEM, checked to fit `algorithm`.

    Raises ValueError, with a sentence fit for one line, for anything else: not a PEM private
    key, encrypted, another key type, a curve other than P-256 for ES256, RSA below 2048 bits.
    """
    if algorithm not in _PRIVATE_KEY_TYPES:
        raise ValueError(f"{algorithm} keys come from settings, not from a key file")
    try:
        private_key = serialization.load_pem_private_key(pem, password=None)
    except TypeError as exc:  # the PEM is encrypted
        raise ValueError("the private key is encrypted; give it unencrypted (PKCS#8 PEM)") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ValueError("the file does not hold a PEM private key (PKCS#8)") from exc
    if not isinstance(private_key, _PRIVATE_KEY_TYPES[algorithm]):
        raise ValueError(f"the private key is not for {algorithm} (KEYTURN_JWT_ALGORITHM)")
    if isinstance(private_key, ec.EllipticCurvePrivateKey) and not isinstance(
        private_key.curve, ec.SECP256R1
    ):
        raise ValueError("an ES256 key must be on the P-256 curve")
    if isinstance(private_key, rsa.RSAPrivateKey) and private_key.key_size < MIN_RSA_KEY_BITS:
        raise ValueError(f"an RS256 key must have at least {MIN_RSA_KEY_BITS} bits")
    return _pkcs8_pem(private_key)


def load_signing_key(
    *,
    kid: str,
    algorithm: str,
    private_key_pem: bytes,
    created_at: datetime,
    retired_at: datetime | None = None,
    publish_until: datetime | None = None,
    revoked_at: datetime | None = None,
) -> SigningKey:
    private_key = serialization.load_pem_private_key(private_key_pem, password=None)
    if not isinstance(private_key, _PRIVATE_KEY_TYPES[algorithm]):
        raise ValueError(f"key {kid} is not a {algorithm} key")
    return SigningKey(
        kid=kid,
        algorithm=algorithm,
        signing_key=private_key,
        verifying_key=private_key.public_key(),
        created_at=created_at,
        retired_at=retired_at,
        publish_until=publish_until,
        revoked_at=revoked_at,
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
        """The newest key whose time has come and has not been retired (or revoked) at `now`."""
        for key in self._newest_first:
            if key.revoked_at is not None:
                continue
            if key.created_at <= now and (key.retired_at is None or key.retired_at > now):
                return key
        for key in self._newest_first:  # a clock behind the key's creation: use the newest
            if key.retired_at is None and key.revoked_at is None:
                return key
        raise LookupError("the key ring has no active signing key")

    def find(self, kid: str) -> SigningKey | None:
        """The key named `kid`, whatever its state (see SigningKey.trusted_until)."""
        return self._by_kid.get(kid)

    def without(self, kid: str, *, now: datetime) -> KeyRing:
        """This ring with `kid` revoked at `now`: it neither signs, verifies nor is published."""
        return KeyRing(
            dataclasses.replace(key, revoked_at=key.revoked_at or now) if key.kid == kid else key
            for key in self._by_kid.values()
        )

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
