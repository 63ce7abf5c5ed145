"""The revocations table: an append-only feed every instance polls for ended sessions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection

from keyturn.storage.models import revocations

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


def record_revocation(
    connection: Connection, *, kind: str, subject: str, now: datetime, expires_at: datetime
) -> None:
    connection.execute(
        insert(revocations).values(
            kind=kind, subject=subject, created_at=now, expires_at=expires_at
        )
    )


def revocations_after(
    connection: Connection, cursor: int, *, now: datetime, limit: int = 5000
) -> list[Revocation]:
    rows = connection.execute(
        select(revocations)
        .where(revocations.c.id > cursor, revocations.c.expires_at > now)
        .order_by(revocations.c.id)
        .limit(limit)
    ).mappings()
    return [
        Revocation(
            id=row["id"], kind=row["kind"], subject=row["subject"], expires_at=row["expires_at"]
        )
        for row in rows
    ]


def latest_revocation_id(connection: Connection) -> int:
    latest = connection.execute(select(func.coalesce(func.max(revocations.c.id), 0))).scalar()
    return int(latest or 0)


def purge_revocations(connection: Connection, *, now: datetime) -> int:
    result = connection.execute(delete(revocations).where(revocations.c.expires_at <= now))
    return int(result.rowcount or 0)
