"""A software WebAuthn authenticator for the tests: an EC P-256 key, "none" attestation.

It plays the browser and the authenticator together: from the options Keyturn hands out it
builds clientDataJSON, authenticatorData and the signature (WebAuthn §6.1, §6.5, §7) and
returns the credential in WebAuthn's JSON form, as `PublicKeyCredential.toJSON()` does. Every
part can be bent (origin, challenge, counter, flags, user handle) to play an attacker.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40
AAGUID = bytes(16)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def from_b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftwareAuthenticator:
    """One credential, made by `create()`. `counts` False: an authenticator without a
    signature counter (it sends 0 every time). `synced`: backup eligible and backed up."""

    origin: str
    counts: bool = True
    synced: bool = False
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    credential_id: bytes = field(default_factory=lambda: os.urandom(32))
    sign_count: int = 0
    user_handle: bytes | None = None
    rp_id: str = ""

    def _flags(self, *, verified: bool) -> int:
        flags = UP | (UV if verified else 0)
        return flags | (BE | BS if self.synced else 0)

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps(
            {
                "type": kind,
                "challenge": challenge,
                "origin": origin or self.origin,
                "crossOrigin": False,
            },
            separators=(",", ":"),
        ).encode()

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,
                3: -7,
                -1: 1,
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )

    def create(
        self, options: dict[str, Any], *, origin: str | None = None, verified: bool = True
    ) -> dict[str, Any]:
        """The credential navigator.credentials.create(options) would return."""
        self.rp_id = options["rp"]["id"]
        self.user_handle = from_b64url(options["user"]["id"])
        auth_data = (
            hashlib.sha256(self.rp_id.encode()).digest()
            + bytes([self._flags(verified=verified) | AT])
            + struct.pack(">I", self.sign_count)
            + AAGUID
            + struct.pack(">H", len(self.credential_id))
            + self.credential_id
            + self._cose_key()
        )
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def get(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        challenge: str | None = None,
        sign_count: int | None = None,
        verified: bool = True,
        user_handle: bytes | None = None,
        rp_id: str | None = None,
    ) -> dict[str, Any]:
        """The assertion navigator.credentials.get(options) would return; each use counts
        one up (when the authenticator counts), unless `sign_count` says what to send."""
        if sign_count is None:
            if self.counts:
                self.sign_count += 1
            sign_count = self.sign_count
        auth_data = (
            hashlib.sha256((rp_id or options.get("rpId") or self.rp_id).encode()).digest()
            + bytes([self._flags(verified=verified)])
            + struct.pack(">I", sign_count)
        )
        client_data = self._client_data("webauthn.get", challenge or options["challenge"], origin)
        signature = self.key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        handle = user_handle if user_handle is not None else self.user_handle
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(handle) if handle is not None else None,
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }
