"""Tokens of mailed links (verify an address, reset a password, confirm a new address):
creation, digests, and the verdict on a presented one. Pure: no I/O."""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime


class Purpose(enum.StrEnum):
    VERIFY = "verify"
    RESET = "reset"
    EMAIL_CHANGE = "email_change"


# secrets.token_urlsafe(32): 43 characters of base64url, 256 random bits.
_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")


def new_email_token() -> str:
    """256 random bits (the contract asks for at least 128), URL-safe for a link's fragment."""
    return secrets.token_urlsafe(32)


def hash_email_token(token: str) -> str:
    """The only form a link token is stored in (SHA-256, hex): a copy of the table opens
    no mailbox's link."""
    return hashlib.sha256(token.encode()).hexdigest()


def is_email_token_shaped(value: str) -> bool:
    """Whether `value` could be one of ours; anything else is refused before any lookup."""
    return _SHAPE.fullmatch(value) is not None


def password_fingerprint(password_hash: str) -> str:
    """What a reset link remembers of the password it replaces: any later change of the
    password (by its owner, an admin, the CLI or another reset) gives another fingerprint,
    and the link stops working."""
    return hashlib.sha256(password_hash.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredEmailToken:
    id: int
    purpose: Purpose
    user_id: str
    email: str
    password_fingerprint: str | None
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None


class TokenVerdict(enum.Enum):
    USE = "use"
    UNKNOWN = "unknown"  # no such token, or one for another purpose
    USED = "used"
    EXPIRED = "expired"
    STALE = "stale"  # the account changed since: another address, another password


def judge_email_token(
    token: StoredEmailToken | None,
    *,
    purposes: frozenset[Purpose],
    now: datetime,
    current_email: str | None,
    current_password_hash: str | None,
) -> TokenVerdict:
    """Say whether a presented link token may be used at `now`. Every verdict but USE is
    answered alike (400 `invalid_token`); the reason goes to the audit trail only.

    A verification or reset link stays tied to the address it was sent to (the account may
    have moved to another since), and a reset link to the password it replaces.
    """
    if token is None or token.purpose not in purposes:
        return TokenVerdict.UNKNOWN
    if token.used_at is not None:
        return TokenVerdict.USED
    if token.expires_at <= now:
        return TokenVerdict.EXPIRED
    if current_email is None:
        return TokenVerdict.UNKNOWN  # the account is gone or disabled
    if token.purpose is not Purpose.EMAIL_CHANGE and token.email != current_email:
        return TokenVerdict.STALE
    if token.purpose is Purpose.RESET and (
        current_password_hash is None
        or token.password_fingerprint != password_fingerprint(current_password_hash)
    ):
        return TokenVerdict.STALE
    return TokenVerdict.USE
