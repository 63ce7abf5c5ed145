"""The users table."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from keyturn.core.sessions import UserRecord
from keyturn.storage.models import users
from keyturn.wire import ROLE_ADMIN


class DuplicateUserError(Exception):
    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


def email_key(email: str) -> str:
    return email.strip().casefold()


def username_key(username: str) -> str:
    return username.strip().casefold()


def _record(row: RowMapping) -> UserRecord:
    return user_from_row(row)


# What user_from_row reads: a query that joins users needs no more of them.
USER_RECORD_COLUMNS = (
    users.c.id,
    users.c.email,
    users.c.username,
    users.c.password_hash,
    users.c.roles,
    users.c.disabled_at,
    users.c.created_at,
    users.c.email_verified_at,
    users.c.mfa_enabled,
)


def user_from_row(row: Mapping[Any, Any], *, prefix: str = "") -> UserRecord:
    """The user in a result row whose users columns are labelled `prefix` + name."""
    return UserRecord(
        id=row[prefix + "id"],
        email=row[prefix + "email"],
        username=row[prefix + "username"],
        # No password (an account a provider created): the empty hash, which no password
        # matches (core.passwords).
        password_hash=row[prefix + "password_hash"] or "",
        roles=tuple(role for role in row[prefix + "roles"].split() if role),
        disabled_at=row[prefix + "disabled_at"],
        created_at=row[prefix + "created_at"],
        email_verified_at=row[prefix + "email_verified_at"],
        mfa_enabled=bool(row[prefix + "mfa_enabled"]),
    )


def insert_user(
    connection: Connection,
    *,
    user_id: str,
    email: str,
    username: str | None,
    password_hash: str | None,
    roles: tuple[str, ...],
    now: datetime,
    email_verified_at: datetime | None = None,
) -> UserRecord:
    """Raises DuplicateUserError("email" | "username") on a case-insensitive clash."""
    if find_user_by_email(connection, email) is not None:
        raise DuplicateUserError("email")
    if username is not None and find_user_by_username(connection, username) is not None:
        raise DuplicateUserError("username")
    try:
        with connection.begin_nested():
            connection.execute(
                insert(users).values(
                    id=user_id,
                    email=email,
                    email_key=email_key(email),
                    username=username,
                    username_key=username_key(username) if username else None,
                    password_hash=password_hash,
                    roles=" ".join(roles),
                    created_at=now,
                    updated_at=now,
                    email_verified_at=email_verified_at,
                )
            )
    except IntegrityError as error:
        # A concurrent registration won the race between the check and the insert.
        field = "username" if "username" in str(error.orig).lower() else "email"
        raise DuplicateUserError(field) from error
    user = find_user_by_id(connection, user_id)
    assert user is not None  # noqa: S101 - inserted just above, in this transaction
    return user


# Built once: it runs on every refresh, and building a statement costs more than running it.
_FIND_USER_BY_ID = select(users).where(users.c.id == bindparam("user_id"))


def find_user_by_id(connection: Connection, user_id: str) -> UserRecord | None:
    # No id holds NUL, and PostgreSQL refuses it outright: such an id names no one.
    if "\x00" in user_id:
        return None
    row = connection.execute(_FIND_USER_BY_ID, {"user_id": user_id}).mappings().first()
    return _record(row) if row else None


def lock_user(connection: Connection, user_id: str) -> UserRecord | None:
    """The user, their row locked until the transaction ends (PostgreSQL; SQLite's writers
    are serialized anyway): checks that span several rows of theirs see no concurrent change."""
    row = (
        connection.execute(select(users).where(users.c.id == user_id).with_for_update())
        .mappings()
        .first()
    )
    return _record(row) if row else None


def find_user_by_email(connection: Connection, email: str) -> UserRecord | None:
    row = (
        connection.execute(select(users).where(users.c.email_key == email_key(email)))
        .mappings()
        .first()
    )
    return _record(row) if row else None


def find_user_by_username(connection: Connection, username: str) -> UserRecord | None:
    row = (
        connection.execute(select(users).where(users.c.username_key == username_key(username)))
        .mappings()
        .first()
    )
    return _record(row) if row else None


def find_user_by_login(connection: Connection, identifier: str) -> UserRecord | None:
    """By email, or by username when the identifier has no @."""
    if "@" in identifier:
        return find_user_by_email(connection, identifier)
    return find_user_by_username(connection, identifier)


def set_password_hash(
    connection: Connection, user_id: str, password_hash: str, *, now: datetime
) -> None:
    connection.execute(
        update(users)
        .where(users.c.id == user_id)
        .values(password_hash=password_hash, updated_at=now)
    )


def set_email_verified(connection: Connection, user_id: str, *, email: str, now: datetime) -> bool:
    """Mark the account's address verified, if it is still `email`."""
    result = connection.execute(
        update(users)
        .where(users.c.id == user_id, users.c.email_key == email_key(email))
        .values(email_verified_at=now, updated_at=now)
    )
    return result.rowcount == 1


def set_email(connection: Connection, user_id: str, email: str, *, now: datetime) -> None:
    """Give the account a new, verified address. Raises DuplicateUserError("email") when
    another account has it (checked, and held by the unique index under a race)."""
    existing = find_user_by_email(connection, email)
    if existing is not None and existing.id != user_id:
        raise DuplicateUserError("email")
    try:
        with connection.begin_nested():
            connection.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(
                    email=email, email_key=email_key(email), email_verified_at=now, updated_at=now
                )
            )
    except IntegrityError as error:
        raise DuplicateUserError("email") from error


def set_disabled(
    connection: Connection, user_id: str, *, disabled_at: datetime | None, now: datetime
) -> bool:
    result = connection.execute(
        update(users).where(users.c.id == user_id).values(disabled_at=disabled_at, updated_at=now)
    )
    return result.rowcount == 1


def delete_user(connection: Connection, user_id: str) -> bool:
    """Delete the user; their sessions and refresh tokens go with them (ON DELETE CASCADE)."""
    return connection.execute(delete(users).where(users.c.id == user_id)).rowcount == 1


def set_roles(
    connection: Connection, user_id: str, roles: tuple[str, ...], *, now: datetime
) -> bool:
    result = connection.execute(
        update(users).where(users.c.id == user_id).values(roles=" ".join(roles), updated_at=now)
    )
    return result.rowcount == 1


def lock_active_admin_ids(connection: Connection) -> set[str]:
    """The ids of enabled users with the admin role, their rows locked until commit on
    PostgreSQL (SQLite's write transaction holds the whole database already): two admins
    demoting each other at once cannot both see the other as the one who stays."""
    rows = connection.execute(
        select(users.c.id, users.c.roles)
        .where(users.c.disabled_at.is_(None), users.c.roles.like("%" + ROLE_ADMIN + "%"))
        .with_for_update()
    )
    return {row.id for row in rows if ROLE_ADMIN in row.roles.split()}


def list_users(
    connection: Connection, *, limit: int, offset: int, email_contains: str | None = None
) -> tuple[list[UserRecord], int]:
    """A page of users by creation, and the total that match."""
    query = select(users)
    count_query = select(func.count()).select_from(users)
    if email_contains:
        pattern = "%" + _escape_like(email_contains.casefold()) + "%"
        condition = or_(
            users.c.email_key.like(pattern, escape="\\"),
            users.c.username_key.like(pattern, escape="\\"),
        )
        query = query.where(condition)
        count_query = count_query.where(condition)
    rows = connection.execute(
        query.order_by(users.c.created_at, users.c.id).limit(limit).offset(offset)
    ).mappings()
    total = connection.execute(count_query).scalar_one()
    return [_record(row) for row in rows], int(total)


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
