"""The email_tokens table: single-use tokens of mailed links, stored as SHA-256 digests."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.engine import Connection

from keyturn.core.email_tokens import Purpose, StoredEmailToken
from keyturn.storage.models import email_tokens


def insert_email_token(
    connection: Connection,
    *,
    token_hash: str,
    purpose: Purpose,
    user_id: str,
    email: str,
    now: datetime,
    expires_at: datetime,
    password_fingerprint: str | None = None,
) -> None:
    connection.execute(
        insert(email_tokens).values(
            token_hash=token_hash,
            purpose=purpose.value,
            user_id=user_id,
            email=email,
            password_fingerprint=password_fingerprint,
            created_at=now,
            expires_at=expires_at,
        )
    )


def find_email_token(connection: Connection, token_hash: str) -> StoredEmailToken | None:
    row = connection.execute(
        select(email_tokens).where(email_tokens.c.token_hash == token_hash)
    ).first()
    if row is None:
        return None
    return StoredEmailToken(
        id=row.id,
        purpose=Purpose(row.purpose),
        user_id=row.user_id,
        email=row.email,
        password_fingerprint=row.password_fingerprint,
        created_at=row.created_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
    )


def use_email_token(connection: Connection, token_id: int, *, now: datetime) -> bool:
    """Mark the token used; False when another request used it first (single use holds
    under a race: only one UPDATE finds it unused)."""
    result = connection.execute(
        update(email_tokens)
        .where(email_tokens.c.id == token_id, email_tokens.c.used_at.is_(None))
        .values(used_at=now)
    )
    return result.rowcount == 1


def end_email_tokens(
    connection: Connection, user_id: str, *, purpose: Purpose, now: datetime
) -> int:
    """End the user's unused tokens of `purpose` (a newer link replaces them)."""
    result = connection.execute(
        update(email_tokens)
        .where(
            email_tokens.c.user_id == user_id,
            email_tokens.c.purpose == purpose.value,
            email_tokens.c.used_at.is_(None),
        )
        .values(used_at=now)
    )
    return int(result.rowcount)


def purge_email_tokens(connection: Connection, *, before: datetime, limit: int) -> int:
    """Delete up to `limit` tokens that expired, or were used, before `before`."""
    old = (
        select(email_tokens.c.id)
        .where(
            or_(
                email_tokens.c.expires_at < before,
                and_(email_tokens.c.used_at.is_not(None), email_tokens.c.used_at < before),
            )
        )
        .limit(limit)
        .scalar_subquery()
    )
    return int(connection.execute(delete(email_tokens).where(email_tokens.c.id.in_(old))).rowcount)
