"""The mfa_challenges table: logins waiting for their second factor, by the SHA-256 of their
`mfa_token`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from keyturn.storage.models import mfa_challenges


@dataclass(frozen=True, slots=True)
class StoredChallenge:
    id: int
    user_id: str
    remember_me: bool
    client_id: str
    first_amr: tuple[str, ...]
    expires_at: datetime
    failures: int
    used_at: datetime | None


def insert_challenge(
    connection: Connection,
    *,
    token_hash: str,
    user_id: str,
    remember_me: bool,
    client_id: str,
    first_amr: tuple[str, ...],
    now: datetime,
    expires_at: datetime,
) -> None:
    connection.execute(
        insert(mfa_challenges).values(
            token_hash=token_hash,
            user_id=user_id,
            remember_me=remember_me,
            client_id=client_id,
            first_amr=" ".join(first_amr),
            created_at=now,
            expires_at=expires_at,
            failures=0,
        )
    )


def find_challenge(connection: Connection, token_hash: str) -> StoredChallenge | None:
    row = connection.execute(
        select(mfa_challenges).where(mfa_challenges.c.token_hash == token_hash)
    ).first()
    if row is None:
        return None
    return StoredChallenge(
        id=row.id,
        user_id=row.user_id,
        remember_me=row.remember_me,
        client_id=row.client_id,
        first_amr=tuple(row.first_amr.split()),
        expires_at=row.expires_at,
        failures=row.failures,
        used_at=row.used_at,
    )


def use_challenge(
    connection: Connection, challenge_id: int, *, now: datetime, max_failures: int
) -> bool:
    """Spend the challenge; True for exactly one caller, and only while it is unused,
    unexpired and not worn out by wrong codes."""
    result = connection.execute(
        update(mfa_challenges)
        .where(
            mfa_challenges.c.id == challenge_id,
            mfa_challenges.c.used_at.is_(None),
            mfa_challenges.c.expires_at > now,
            mfa_challenges.c.failures < max_failures,
        )
        .values(used_at=now)
    )
    return result.rowcount == 1


def count_challenge_failure(connection: Connection, challenge_id: int) -> None:
    connection.execute(
        update(mfa_challenges)
        .where(mfa_challenges.c.id == challenge_id)
        .values(failures=mfa_challenges.c.failures + 1)
    )


def purge_challenges(connection: Connection, *, now: datetime, limit: int) -> int:
    """Delete up to `limit` challenges past their expiry; returns how many went."""
    doomed = select(mfa_challenges.c.id).where(mfa_challenges.c.expires_at <= now).limit(limit)
    result = connection.execute(delete(mfa_challenges).where(mfa_challenges.c.id.in_(doomed)))
    return int(result.rowcount or 0)
