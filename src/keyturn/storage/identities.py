"""The identities table: the provider identities users sign in with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from keyturn.storage.models import identities


class IdentityTakenError(Exception):
    """(provider, subject) is linked already: a concurrent callback won the race."""


@dataclass(frozen=True, slots=True)
class Identity:
    id: str
    user_id: str
    provider: str
    subject: str
    email: str | None
    created_at: datetime
    last_used_at: datetime


def _identity(row: object) -> Identity:
    return Identity(
        id=row.id,  # type: ignore[attr-defined]
        user_id=row.user_id,  # type: ignore[attr-defined]
        provider=row.provider,  # type: ignore[attr-defined]
        subject=row.subject,  # type: ignore[attr-defined]
        email=row.email,  # type: ignore[attr-defined]
        created_at=row.created_at,  # type: ignore[attr-defined]
        last_used_at=row.last_used_at,  # type: ignore[attr-defined]
    )


def find_identity(connection: Connection, provider: str, subject: str) -> Identity | None:
    row = connection.execute(
        select(identities).where(identities.c.provider == provider, identities.c.subject == subject)
    ).first()
    return _identity(row) if row else None


def identities_of(connection: Connection, user_id: str) -> list[Identity]:
    rows = connection.execute(
        select(identities)
        .where(identities.c.user_id == user_id)
        .order_by(identities.c.created_at, identities.c.id)
    ).all()
    return [_identity(row) for row in rows]


def count_identities(connection: Connection, user_id: str) -> int:
    return int(
        connection.execute(
            select(func.count()).select_from(identities).where(identities.c.user_id == user_id)
        ).scalar_one()
    )


def insert_identity(connection: Connection, identity: Identity) -> None:
    """Raises IdentityTakenError when (provider, subject) is linked already."""
    try:
        with connection.begin_nested():
            connection.execute(
                insert(identities).values(
                    id=identity.id,
                    user_id=identity.user_id,
                    provider=identity.provider,
                    subject=identity.subject,
                    email=identity.email,
                    created_at=identity.created_at,
                    last_used_at=identity.last_used_at,
                )
            )
    except IntegrityError as error:
        raise IdentityTakenError() from error


def touch_identity(
    connection: Connection, identity_id: str, *, email: str | None, now: datetime
) -> None:
    """A sign-in through it: when, and the address the provider gives now."""
    connection.execute(
        update(identities)
        .where(identities.c.id == identity_id)
        .values(last_used_at=now, email=email)
    )


def delete_identity(connection: Connection, identity_id: str, *, user_id: str) -> bool:
    """Unlink one of the user's identities; False when the user has none with this id."""
    result = connection.execute(
        delete(identities).where(identities.c.id == identity_id, identities.c.user_id == user_id)
    )
    return bool(result.rowcount)
