"""The refresh_tokens table: a session's tokens, their rotation, and the one-statement
rotation on PostgreSQL.

Like storage/sessions.py, the statements on the refresh path are built once, with bound
parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Connection, RowMapping

from keyturn.core.refresh import StoredRefreshToken
from keyturn.core.sessions import Session, UserRecord
from keyturn.storage.models import refresh_tokens, sessions, users
from keyturn.storage.prepared import Prepared
from keyturn.storage.sessions import session_from_row, touch_session
from keyturn.storage.users import USER_RECORD_COLUMNS, user_from_row


def _refresh(row: RowMapping) -> StoredRefreshToken:
    return StoredRefreshToken(
        id=row["id"],
        session_id=row["session_id"],
        expires_at=row["expires_at"],
        rotated_at=row["rotated_at"],
        sealed_successor=row["sealed_successor"],
    )


_INSERT_REFRESH_TOKEN = Prepared(
    insert(refresh_tokens).values(
        session_id=bindparam("session_id"),
        token_hash=bindparam("token_hash"),
        created_at=bindparam("created_at"),
        expires_at=bindparam("expires_at"),
    )
)


def insert_refresh_token(
    connection: Connection,
    *,
    session_id: str,
    token_hash: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    _INSERT_REFRESH_TOKEN.run(
        connection,
        {
            "session_id": session_id,
            "token_hash": token_hash,
            "created_at": now,
            "expires_at": expires_at,
        },
    )


_REFRESH_COLUMNS = (
    refresh_tokens.c.id.label("token_id"),
    refresh_tokens.c.expires_at.label("token_expires_at"),
    refresh_tokens.c.rotated_at,
    refresh_tokens.c.sealed_successor,
)


def _joined_refresh(row: Mapping[Any, Any]) -> StoredRefreshToken:
    """The token's part of a row of _REFRESH_COLUMNS joined with its session."""
    return StoredRefreshToken(
        id=row["token_id"],
        session_id=row["id"],
        expires_at=row["token_expires_at"],
        rotated_at=row["rotated_at"],
        sealed_successor=row["sealed_successor"],
    )


_FIND_REFRESH_TOKEN = (
    select(*_REFRESH_COLUMNS, sessions)
    .join(sessions, sessions.c.id == refresh_tokens.c.session_id)
    .where(refresh_tokens.c.token_hash == bindparam("token_hash"))
)


def find_refresh_token(
    connection: Connection, token_hash: str
) -> tuple[StoredRefreshToken, Session] | None:
    """The stored token and its session, in one query."""
    row = connection.execute(_FIND_REFRESH_TOKEN, {"token_hash": token_hash}).mappings().first()
    if row is None:
        return None
    token = _joined_refresh(row)
    return token, session_from_row(row)


_MARK_ROTATED = Prepared(
    update(refresh_tokens)
    .where(
        refresh_tokens.c.id == bindparam("refresh_token_id"),
        refresh_tokens.c.rotated_at.is_(None),
    )
    .values(rotated_at=bindparam("now"), sealed_successor=bindparam("sealed"))
)
_REFETCH_REFRESH_TOKEN = select(refresh_tokens).where(
    refresh_tokens.c.id == bindparam("refresh_token_id")
)


_USER_PREFIX = "account_"  # not "user_": sessions.user_id is in the row too
_FIND_REFRESH_TOKEN_WITH_USER = Prepared(
    select(
        *_REFRESH_COLUMNS,
        sessions,
        *(column.label(_USER_PREFIX + column.name) for column in USER_RECORD_COLUMNS),
    )
    .join(sessions, sessions.c.id == refresh_tokens.c.session_id)
    .outerjoin(users, users.c.id == sessions.c.user_id)
    .where(refresh_tokens.c.token_hash == bindparam("token_hash"))
)


def find_refresh_token_with_user(
    connection: Connection, token_hash: str
) -> tuple[StoredRefreshToken, Session, UserRecord | None] | None:
    """The stored token, its session and the session's user (None when gone), in one query:
    a refresh needs all three, and each query is a round trip on PostgreSQL."""
    row = _FIND_REFRESH_TOKEN_WITH_USER.first(connection, {"token_hash": token_hash})
    if row is None:
        return None
    token = _joined_refresh(row)
    user = user_from_row(row, prefix=_USER_PREFIX) if row[_USER_PREFIX + "id"] else None
    return token, session_from_row(row), user


def mark_rotated(
    connection: Connection, refresh_token_id: int, *, now: datetime, sealed_successor: bytes
) -> bool:
    """Claim the rotation; exactly one concurrent caller sees True (the row lock decides)."""
    touched = _MARK_ROTATED.run(
        connection,
        {"refresh_token_id": refresh_token_id, "now": now, "sealed": sealed_successor},
    )
    return touched == 1


def _rotation_in_one_statement() -> Prepared:
    """PostgreSQL: the claim, the successor's row and the session's new idle expiry as one
    statement, one round trip instead of three. The insert and the update read the claim's
    RETURNING, so they write only when the claim did; data-modifying CTEs run exactly once,
    whether or not the outer query reads them."""
    now = bindparam("now", type_=refresh_tokens.c.created_at.type)
    expires_at = bindparam("expires_at", type_=refresh_tokens.c.expires_at.type)
    claimed = (
        update(refresh_tokens)
        .where(
            refresh_tokens.c.id == bindparam("refresh_token_id"),
            refresh_tokens.c.rotated_at.is_(None),
        )
        .values(rotated_at=now, sealed_successor=bindparam("sealed"))
        .returning(refresh_tokens.c.session_id)
        .cte("claimed")
    )
    successor = (
        insert(refresh_tokens)
        .from_select(
            ["session_id", "token_hash", "created_at", "expires_at"],
            select(
                claimed.c.session_id,
                bindparam("token_hash", type_=refresh_tokens.c.token_hash.type),
                now,
                expires_at,
            ),
        )
        .cte("successor")
    )
    touched = (
        update(sessions)
        .where(sessions.c.id.in_(select(claimed.c.session_id)))
        .values(last_used_at=now, idle_expires_at=expires_at)
        .cte("touched")
    )
    return Prepared(
        select(func.count().label("claimed")).select_from(claimed).add_cte(successor, touched)
    )


_ROTATE_IN_ONE_STATEMENT = _rotation_in_one_statement()


def rotate_refresh_token(
    connection: Connection,
    refresh_token_id: int,
    *,
    session_id: str,
    now: datetime,
    sealed_successor: bytes,
    successor_token_hash: str,
    idle_expires_at: datetime,
) -> bool:
    """Claim the rotation of a stored token and write what follows it: the successor's
    digest (valid until `idle_expires_at`) and the session's use. Exactly one concurrent
    caller sees True (the row lock decides); the others write nothing."""
    if connection.dialect.name == "postgresql":
        row = _ROTATE_IN_ONE_STATEMENT.first(
            connection,
            {
                "refresh_token_id": refresh_token_id,
                "now": now,
                "sealed": sealed_successor,
                "token_hash": successor_token_hash,
                "expires_at": idle_expires_at,
            },
        )
        return row is not None and row["claimed"] == 1
    if not mark_rotated(connection, refresh_token_id, now=now, sealed_successor=sealed_successor):
        return False
    insert_refresh_token(
        connection,
        session_id=session_id,
        token_hash=successor_token_hash,
        now=now,
        expires_at=idle_expires_at,
    )
    touch_session(connection, session_id, now=now, idle_expires_at=idle_expires_at)
    return True


def refetch_refresh_token(connection: Connection, refresh_token_id: int) -> StoredRefreshToken:
    row = (
        connection.execute(_REFETCH_REFRESH_TOKEN, {"refresh_token_id": refresh_token_id})
        .mappings()
        .one()
    )
    return _refresh(row)


_ROTATED_AT_BY_HASH = select(refresh_tokens.c.rotated_at).where(
    refresh_tokens.c.token_hash == bindparam("token_hash")
)


def is_unused_refresh_token(connection: Connection, token_hash: str) -> bool:
    """Whether a refresh token exists and has never been presented (not rotated yet)."""
    row = connection.execute(_ROTATED_AT_BY_HASH, {"token_hash": token_hash}).first()
    return row is not None and row[0] is None


def forget_successor(connection: Connection, session_id: str) -> None:
    """Drop the sealed successors of an ended session: nothing of it can be replayed."""
    connection.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.session_id == session_id)
        .values(sealed_successor=None)
    )


def purge_expired_refresh_tokens(connection: Connection, *, now: datetime, limit: int) -> int:
    """Delete up to `limit` refresh tokens past their expiry; returns how many went."""
    doomed = select(refresh_tokens.c.id).where(refresh_tokens.c.expires_at <= now).limit(limit)
    result = connection.execute(delete(refresh_tokens).where(refresh_tokens.c.id.in_(doomed)))
    return int(result.rowcount or 0)
