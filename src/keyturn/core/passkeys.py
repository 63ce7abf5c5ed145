"""Passkeys (WebAuthn credentials): the stored credential, its challenges, and the rules on a
presented assertion that the WebAuthn library leaves to the relying party. Pure: no I/O."""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

CHALLENGE_BYTES = 32  # WebAuthn §13.4.3 asks for at least 16 random bytes
MAX_NAME_CHARS = 64
DEFAULT_NAME = "Passkey"


class ChallengePurpose(enum.StrEnum):
    REGISTER = "register"
    LOGIN = "login"


@dataclass(frozen=True, slots=True)
class Passkey:
    id: str
    user_id: str
    credential_id: str  # base64url, as WebAuthn's JSON carries it
    public_key: bytes
    sign_count: int
    transports: tuple[str, ...]
    backup_eligible: bool
    backed_up: bool
    aaguid: str
    name: str
    created_at: datetime
    last_used_at: datetime | None


def new_passkey_id() -> str:
    return secrets.token_urlsafe(16)


def new_challenge() -> bytes:
    return secrets.token_bytes(CHALLENGE_BYTES)


def hash_challenge(challenge: bytes) -> str:
    """The only form a challenge is stored in (SHA-256, hex): a copy of the table answers
    no ceremony."""
    return hashlib.sha256(challenge).hexdigest()


class CounterVerdict(enum.Enum):
    ACCEPT = "accept"
    REGRESSED = "regressed"  # a possible clone of the authenticator (WebAuthn §6.1.1)


def judge_sign_count(stored: int, presented: int) -> CounterVerdict:
    """Whether the signature counter of a verified assertion may be believed. An authenticator
    that keeps no counter sends 0 every time; one that does must send more than last time:
    anything else means two authenticators share the key."""
    if stored == 0 and presented == 0:
        return CounterVerdict.ACCEPT
    return CounterVerdict.ACCEPT if presented > stored else CounterVerdict.REGRESSED


def passkey_amr(passkey: Passkey) -> tuple[str, ...]:
    """RFC 8176 `amr` of a login with this passkey: `swk` for a key that can leave its device
    (synced, or eligible for backup), `hwk` for one bound to its authenticator."""
    return ("swk",) if passkey.backup_eligible or passkey.backed_up else ("hwk",)


def clean_passkey_name(name: str) -> str:
    """A name as shown in lists: whitespace runs as one space, at most MAX_NAME_CHARS."""
    return " ".join(name.split())[:MAX_NAME_CHARS]


_BROWSERS = (
    (re.compile(r"Edg(A|iOS)?/"), "Edge"),
    (re.compile(r"Firefox/|FxiOS/"), "Firefox"),
    (re.compile(r"Chrome/|CriOS/|Chromium/"), "Chrome"),
    (re.compile(r"Version/[\d.]+.*Safari/"), "Safari"),
)
_SYSTEMS = (
    (re.compile(r"iPhone|iPad|iPod"), "iOS"),
    (re.compile(r"Android"), "Android"),
    (re.compile(r"Windows"), "Windows"),
    (re.compile(r"Mac OS X|Macintosh"), "macOS"),
    (re.compile(r"CrOS"), "ChromeOS"),
    (re.compile(r"Linux"), "Linux"),
)


def default_passkey_name(user_agent: str | None) -> str:
    """A name for a passkey registered without one: where it was made ("Chrome on macOS"),
    which is what its owner will recognise in the list."""
    agent = user_agent or ""
    browser = next((name for pattern, name in _BROWSERS if pattern.search(agent)), None)
    system = next((name for pattern, name in _SYSTEMS if pattern.search(agent)), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or DEFAULT_NAME
