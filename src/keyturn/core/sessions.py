"""Sessions: one per login, the `sid` of its access tokens, bounded by idle and absolute ages;
the user a session belongs to, and the revocations that end sessions and tokens."""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta


def new_session_id(created_at: datetime) -> str:
    """A session id that sorts by creation time: milliseconds in hex, then 96 random bits.

    Time first makes the indexes that hold session ids (the sessions' primary key, the refresh
    tokens' `session_id`) grow at one end. A random id lands each login on a random page of
    indexes of millions of entries: a page to read and, after every checkpoint, a whole page
    to write to the WAL. The id is no secret (it is the `sid` of every access token), and the
    time it shows is the session's `created_at`, which the session list shows anyway.
    """
    milliseconds = int(created_at.timestamp() * 1000)
    return f"{milliseconds:012x}{secrets.token_urlsafe(12)}"


@dataclass(frozen=True, slots=True)
class SessionLifetimes:
    idle: timedelta
    absolute: timedelta


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    user_id: str
    created_at: datetime
    last_used_at: datetime
    idle_expires_at: datetime
    absolute_expires_at: datetime
    ended_at: datetime | None
    remember_me: bool
    user_agent: str | None
    ip: str | None
    client_id: str
    # The login that opened the session (OIDC's auth_time, RFC 8176 amr); a reauthentication
    # moves auth_time forward.
    auth_time: datetime
    amr: tuple[str, ...]


class SessionState(enum.Enum):
    ACTIVE = "active"
    ENDED = "ended"
    EXPIRED = "expired"


def session_state(session: Session, *, now: datetime) -> SessionState:
    if session.ended_at is not None:
        return SessionState.ENDED
    if now >= session.idle_expires_at or now >= session.absolute_expires_at:
        return SessionState.EXPIRED
    return SessionState.ACTIVE


def next_idle_expiry(*, now: datetime, idle: timedelta, absolute_expires_at: datetime) -> datetime:
    """A refresh extends the session by its idle lifetime, never past its absolute end."""
    return min(now + idle, absolute_expires_at)


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: str
    email: str
    username: str | None
    password_hash: str
    roles: tuple[str, ...]
    disabled_at: datetime | None
    created_at: datetime
    email_verified_at: datetime | None = None
    mfa_enabled: bool = False

    @property
    def is_disabled(self) -> bool:
        return self.disabled_at is not None

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None


KIND_SESSION = "session"
KIND_TOKEN = "token"
KIND_USER = "user"  # the user changed: caches of that user are stale
KIND_KEY = "key"  # a signing key was revoked: it verifies nothing any more


@dataclass(frozen=True, slots=True)
class Revocation:
    id: int
    kind: str
    subject: str
    expires_at: datetime
