"""Which private keys `keyturn keys import` accepts for each algorithm."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from keyturn.core.keys import load_signing_key, normalize_private_key_pem

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def pem(key: Any, *, fmt: Any = serialization.PrivateFormat.PKCS8, password: bytes = b"") -> bytes:
    encryption: Any = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    result: bytes = key.private_bytes(serialization.Encoding.PEM, fmt, encryption)
    return result


@pytest.mark.parametrize(
    ("algorithm", "key"),
    [
        ("EdDSA", ed25519.Ed25519PrivateKey.generate()),
        ("ES256", ec.generate_private_key(ec.SECP256R1())),
        ("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    ],
)
def test_a_key_of_the_algorithm_is_accepted_as_pkcs8(algorithm: str, key: Any) -> None:
    normalized = normalize_private_key_pem(pem(key), algorithm=algorithm)
    assert normalized.startswith(b"-----BEGIN PRIVATE KEY-----")
    signing = load_signing_key(
        kid="k", algorithm=algorithm, private_key_pem=normalized, created_at=NOW
    )
    assert signing.public_jwk()["kid"] == "k"


@pytest.mark.parametrize(
    ("algorithm", "data", "reason"),
    [
        ("EdDSA", pem(ec.generate_private_key(ec.SECP256R1())), "not for EdDSA"),
        ("ES256", pem(ec.generate_private_key(ec.SECP384R1())), "P-256"),
        # S505: the weak key is the point, the import must refuse it.
        ("RS256", pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)), "2048"),  # noqa: S505
        ("EdDSA", pem(ed25519.Ed25519PrivateKey.generate(), password=b"pw"), "encrypted"),
        ("EdDSA", b"not a key at all", "PEM private key"),
        (
            "EdDSA",
            ed25519.Ed25519PrivateKey.generate()
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            "PEM private key",
        ),
        ("HS256", pem(ed25519.Ed25519PrivateKey.generate()), "settings"),
    ],
)
def test_anything_else_is_refused_with_one_sentence(
    algorithm: str, data: bytes, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason) as refused:
        normalize_private_key_pem(data, algorithm=algorithm)
    assert "\n" not in str(refused.value)
