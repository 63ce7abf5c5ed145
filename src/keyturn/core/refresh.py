"""Opaque refresh tokens: creation, digests, the sealed successor, and the rotation verdict."""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from keyturn import wire

MAX_REFRESH_TOKEN_LENGTH = 256
_SEAL_INFO = b"keyturn refresh successor v1"


def new_refresh_token() -> str:
    """256 random bits; the prefix keeps it from ever parsing as a JWT."""
    return wire.REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_refresh_token(refresh_token: str) -> str:
    """The only form a refresh token is stored in (SHA-256, hex)."""
    return hashlib.sha256(refresh_token.encode()).hexdigest()


def is_refresh_token_shaped(value: str) -> bool:
    return value.startswith(wire.REFRESH_TOKEN_PREFIX) and len(value) <= MAX_REFRESH_TOKEN_LENGTH


def same_token(left: str, right: str) -> bool:
    return hmac.compare_digest(left.encode(), right.encode())


def _seal_key(parent_token: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_SEAL_INFO).derive(
        parent_token.encode()
    )


def seal_successor(parent_token: str, successor_token: str) -> bytes:
    """Encrypt the successor under a key only the parent token's holder can derive.

    This is how a retry within the grace window gets the same successor back while the
    database holds no usable refresh token in the clear.
    """
    nonce = secrets.token_bytes(12)
    return nonce + AESGCM(_seal_key(parent_token)).encrypt(nonce, successor_token.encode(), None)


def open_successor(parent_token: str, sealed: bytes) -> str | None:
    try:
        return AESGCM(_seal_key(parent_token)).decrypt(sealed[:12], sealed[12:], None).decode()
    except (InvalidTag, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class StoredRefreshToken:
    id: int
    session_id: str
    expires_at: datetime
    rotated_at: datetime | None
    sealed_successor: bytes | None


class RefreshVerdict(enum.Enum):
    ROTATE = "rotate"
    WITHIN_GRACE = "within_grace"
    REUSED = "reused"
    EXPIRED = "expired"


def judge_refresh(token: StoredRefreshToken, *, now: datetime, grace: timedelta) -> RefreshVerdict:
    """Say what presenting this refresh token at `now` means. No I/O, no side effects."""
    if token.rotated_at is None:
        return RefreshVerdict.EXPIRED if token.expires_at <= now else RefreshVerdict.ROTATE
    if grace and now - token.rotated_at <= grace and token.sealed_successor is not None:
        return RefreshVerdict.WITHIN_GRACE  # concurrent tabs and retries share one successor
    return RefreshVerdict.REUSED  # theft: the service ends the whole session
