"""The tables, as SQLAlchemy Core metadata (migrations create them; tests compare the two)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

BigId = BigInteger().with_variant(Integer(), "sqlite")
# "2026-11-24 09:30:00.000000": how UTCDateTime writes a moment as text on SQLite.
_TEXT_FORMAT = "%04d-%02d-%02d %02d:%02d:%02d.%06d"


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, whatever the backend stores."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored")
        utc: datetime = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        stored: datetime = value
        return stored.replace(tzinfo=UTC) if stored.tzinfo is None else stored.astimezone(UTC)

    # SQLite keeps datetimes as text, which SQLAlchemy writes and reads through Python-level
    # formatting and a regular expression; a refresh reads about ten of them. The same text
    # ("2026-11-24 09:30:00.000000", microseconds always present, so text order is time order)
    # is written and read here by the datetime module's own ISO functions.

    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def to_text(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is not UTC:  # the clock's own datetimes skip the conversion
                if value.tzinfo is None:
                    raise ValueError("naive datetimes are not stored")
                value = value.astimezone(UTC)
            # By fields, not by isoformat(): that writes the offset, which would then be cut
            # off, and costs half as much again.
            return _TEXT_FORMAT % (
                value.year,
                value.month,
                value.day,
                value.hour,
                value.minute,
                value.second,
                value.microsecond,
            )

        return to_text

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        def from_text(value: str | None) -> datetime | None:
            if value is None:
                return None
            try:  # ours, which has no offset: read as UTC in one step, not two
                return datetime.fromisoformat(value + "+00:00")
            except ValueError:  # text written elsewhere, with an offset of its own
                parsed = datetime.fromisoformat(value)
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)

        return from_text


users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("email", String(320), nullable=False),
    Column("email_key", String(320), nullable=False, unique=True),
    Column("username", String(64)),
    Column("username_key", String(64), unique=True),
    # NULL: an account a provider created, which has no password until one is set by reset.
    Column("password_hash", String(255)),
    Column("roles", String(255), nullable=False, server_default=""),
    Column("disabled_at", UTCDateTime()),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("email_verified_at", UTCDateTime()),
    # Whether a second factor is active (storage/factors.py keeps it in step with the factor
    # tables): read with the user on every refresh, where a join per factor table would cost.
    Column("mfa_enabled", Boolean(), nullable=False, server_default=false()),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_used_at", UTCDateTime(), nullable=False),
    Column("idle_expires_at", UTCDateTime(), nullable=False),
    Column("absolute_expires_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime()),
    Column("end_reason", String(32)),
    Column("remember_me", Boolean(), nullable=False),
    Column("user_agent", String(512)),
    Column("ip", String(64)),
    Column("client_id", String(64), nullable=False),
    # The login that opened the session: when, and by which RFC 8176 methods (space-separated);
    # every access token of the session carries them as `auth_time` and `amr`.
    Column("auth_time", UTCDateTime(), nullable=False),
    Column("amr", String(64), nullable=False),
    Index(None, "user_id"),
    Index(None, "idle_expires_at"),
    # The purge finds ended sessions by this; only ended ones are in it.
    Index(
        None,
        "ended_at",
        sqlite_where=text("ended_at IS NOT NULL"),
        postgresql_where=text("ended_at IS NOT NULL"),
    ),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("session_id", String(32), ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("rotated_at", UTCDateTime()),
    Column("sealed_successor", LargeBinary()),
    Index(None, "session_id"),
    Index(None, "expires_at"),
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("algorithm", String(16), nullable=False),
    Column("private_key_pem", Text(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("retired_at", UTCDateTime()),
    Column("publish_until", UTCDateTime()),
    Column("revoked_at", UTCDateTime()),
)

revocations = Table(
    "revocations",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("subject", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    # PostgreSQL: the id of the transaction that wrote the row (pg_current_xact_id(), a
    # default the migration sets), which readers of the feed compare with their snapshots.
    # NULL on SQLite, where the id alone orders the feed (see storage.revocations).
    Column("transaction_id", BigInteger()),
    Index(None, "expires_at"),
    Index(None, "transaction_id"),
    # SQLite: an id is never handed out again, even after the rows above it were purged.
    sqlite_autoincrement=True,
)

rate_limits = Table(
    "rate_limits",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("window_started_at", UTCDateTime(), nullable=False),
    Column("count", Integer(), nullable=False),
)

server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("event", String(48), nullable=False),
    Column("user_id", String(32)),
    Column("session_id", String(32)),
    Column("ip", String(64)),
    Column("user_agent", String(512)),
    Column("detail", Text()),
    Index(None, "occurred_at"),
    Index(None, "user_id"),
)

# Mail waiting for the sender in upkeep: a request only inserts here, in its own transaction.
# `message` is the whole rendered RFC 5322 message (it holds single-use links) and is emptied
# once the mail is sent or has failed; `claimed_until` is the lease of the sender delivering it.
mail_outbox = Table(
    "mail_outbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(48), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("user_id", String(32)),
    Column("message", LargeBinary()),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer(), nullable=False, server_default="0"),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("claimed_until", UTCDateTime()),
    Column("claim_token", String(32)),
    Column("finished_at", UTCDateTime()),
    Column("last_error", String(500)),
    Index(None, "status", "next_attempt_at"),
    Index(None, "finished_at"),
)

# Single-use tokens of mailed links: address verification, password reset, email change. Only
# the SHA-256 of a token is kept; `email` is the address the link went to (for a change: the
# new address, which replaces the account's only when the link is used), and
# `password_fingerprint` ties a reset link to the password it replaces: any change of the
# password, by whatever path, ends the link.
email_tokens = Table(
    "email_tokens",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("purpose", String(16), nullable=False),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("email", String(320), nullable=False),
    Column("password_fingerprint", String(64)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("used_at", UTCDateTime()),
    Index(None, "user_id", "purpose"),
    Index(None, "expires_at"),
)

passkeys = Table(
    "passkeys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    # base64url of the credential id (at most 1023 bytes, WebAuthn §5.1).
    Column("credential_id", String(1400), nullable=False, unique=True),
    Column("public_key", LargeBinary(), nullable=False),  # COSE_Key, as the authenticator sent it
    Column("sign_count", BigInteger(), nullable=False),
    Column("transports", String(255), nullable=False),
    Column("backup_eligible", Boolean(), nullable=False),
    Column("backed_up", Boolean(), nullable=False),
    Column("aaguid", String(36), nullable=False),
    Column("name", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_used_at", UTCDateTime()),
    Index(None, "user_id"),
)

passkey_challenges = Table(
    "passkey_challenges",
    metadata,
    Column("challenge_hash", String(64), primary_key=True),
    Column("purpose", String(16), nullable=False),
    # The account a registration (or a second-factor assertion) is for; None: password-less.
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE")),
    Column("expires_at", UTCDateTime(), nullable=False),
    Index(None, "expires_at"),
)

# An authenticator app (RFC 6238), one per user. `secret` is sealed (core/sealing.py); it is
# active once `confirmed_at` is set. `last_step` is the time step of the last code accepted:
# only a later one is accepted after it, so a code works once.
totp_factors = Table(
    "totp_factors",
    metadata,
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("secret", Text(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("confirmed_at", UTCDateTime()),
    Column("last_step", BigInteger()),
)

# One-time recovery codes, only as SHA-256 digests (each code holds 80 random bits).
recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("code_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("used_at", UTCDateTime()),
    Index(None, "user_id"),
)

# A login waiting for its second factor: the `mfa_token` (its SHA-256 only) and what the
# first factor settled, so the second step opens the very session the login asked for.
mfa_challenges = Table(
    "mfa_challenges",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("remember_me", Boolean(), nullable=False),
    Column("client_id", String(64), nullable=False),
    Column("first_amr", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("failures", Integer(), nullable=False, server_default="0"),
    Column("used_at", UTCDateTime()),
    Index(None, "expires_at"),
)
# The provider identities a user signs in with: (provider, subject) names one person at one
# provider, for good (an email address can change hands; a subject does not).
identities = Table(
    "identities",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("email", String(320)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_used_at", UTCDateTime(), nullable=False),
    UniqueConstraint("provider", "subject"),
    Index(None, "user_id"),
)
