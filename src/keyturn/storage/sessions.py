"""The sessions and refresh_tokens tables.

The statements on the refresh path are built once, with bound parameters: building a
SQLAlchemy statement costs several times what executing it against SQLite does.
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
from keyturn.storage.users import USER_RECORD_COLUMNS, user_from_row


def _session(row: Mapping[Any, Any]) -> Session:
    return Session(
        id=row["id"],
        user_id=row["user_id"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        idle_expires_at=row["idle_expires_at"],
        absolute_expires_at=row["absolute_expires_at"],
        ended_at=row["ended_at"],
        remember_me=row["remember_me"],
        user_agent=row["user_agent"],
        ip=row["ip"],
        client_id=row["client_id"],
        auth_time=row["auth_time"],
        amr=tuple(row["amr"].split()),
    )


def _refresh(row: RowMapping) -> StoredRefreshToken:
    return StoredRefreshToken(
        id=row["id"],
        session_id=row["session_id"],
        expires_at=row["expires_at"],
        rotated_at=row["rotated_at"],
        sealed_successor=row["sealed_successor"],
    )


_INSERT_SESSION = insert(sessions)
_FIND_SESSION = select(sessions).where(sessions.c.id == bindparam("session_id"))


def insert_session(connection: Connection, session: Session) -> None:
    connection.execute(
        _INSERT_SESSION,
        {
            "id": session.id,
            "user_id": session.user_id,
            "created_at": session.created_at,
            "last_used_at": session.last_used_at,
            "idle_expires_at": session.idle_expires_at,
            "absolute_expires_at": session.absolute_expires_at,
            "ended_at": None,
            "remember_me": session.remember_me,
            "user_agent": session.user_agent,
            "ip": session.ip,
            "client_id": session.client_id,
            "auth_time": session.auth_time,
            "amr": " ".join(session.amr),
        },
    )


def set_auth_time(connection: Connection, session_id: str, *, auth_time: datetime) -> bool:
    """A reauthentication: the session's later access tokens carry the new auth_time. False
    when the session has ended (or never was)."""
    result = connection.execute(
        update(sessions)
        .where(sessions.c.id == session_id, sessions.c.ended_at.is_(None))
        .values(auth_time=auth_time)
    )
    return result.rowcount == 1


def find_session(connection: Connection, session_id: str) -> Session | None:
    row = connection.execute(_FIND_SESSION, {"session_id": session_id}).mappings().first()
    return _session(row) if row else None


def list_live_sessions(connection: Connection, user_id: str, *, now: datetime) -> list[Session]:
    rows = connection.execute(
        select(sessions)
        .where(
            sessions.c.user_id == user_id,
            sessions.c.ended_at.is_(None),
            sessions.c.idle_expires_at > now,
            sessions.c.absolute_expires_at > now,
        )
        .order_by(sessions.c.last_used_at.desc())
    ).mappings()
    return [_session(row) for row in rows]


def live_session_ids_beyond(
    connection: Connection, user_id: str, *, now: datetime, keep: int, opened: str
) -> list[str]:
    """Ids of the user's live sessions beyond the `keep` newest, newest first; the session
    just `opened` always counts as the newest, whatever sessions share its millisecond.

    On PostgreSQL the user's row is locked first, so that logins of one user running at
    once count each other's sessions (SQLite's writers are one at a time already)."""
    connection.execute(select(users.c.id).where(users.c.id == user_id).with_for_update())
    return list(
        connection.execute(
            select(sessions.c.id)
            .where(
                sessions.c.user_id == user_id,
                sessions.c.id != opened,
                sessions.c.ended_at.is_(None),
                sessions.c.idle_expires_at > now,
                sessions.c.absolute_expires_at > now,
            )
            .order_by(sessions.c.created_at.desc(), sessions.c.id.desc())
            .offset(max(keep - 1, 0))
        ).scalars()
    )


def live_session_ids(connection: Connection, user_id: str) -> list[str]:
    return list(
        connection.execute(
            select(sessions.c.id).where(
                sessions.c.user_id == user_id, sessions.c.ended_at.is_(None)
            )
        ).scalars()
    )


def end_session(connection: Connection, session_id: str, *, reason: str, now: datetime) -> bool:
    """Mark the session ended; False when it was already ended or does not exist."""
    result = connection.execute(
        update(sessions)
        .where(sessions.c.id == session_id, sessions.c.ended_at.is_(None))
        .values(ended_at=now, end_reason=reason)
    )
    return result.rowcount == 1


_TOUCH_SESSION = Prepared(
    update(sessions)
    .where(sessions.c.id == bindparam("session_id"))
    .values(last_used_at=bindparam("now"), idle_expires_at=bindparam("new_idle_expires_at"))
)


def touch_session(
    connection: Connection, session_id: str, *, now: datetime, idle_expires_at: datetime
) -> None:
    _TOUCH_SESSION.run(
        connection,
        {"session_id": session_id, "now": now, "new_idle_expires_at": idle_expires_at},
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
    token = StoredRefreshToken(
        id=row["token_id"],
        session_id=row["id"],
        expires_at=row["token_expires_at"],
        rotated_at=row["rotated_at"],
        sealed_successor=row["sealed_successor"],
    )
    return token, _session(row)


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
    token = StoredRefreshToken(
        id=row["token_id"],
        session_id=row["id"],
        expires_at=row["token_expires_at"],
        rotated_at=row["rotated_at"],
        sealed_successor=row["sealed_successor"],
    )
    user = user_from_row(row, prefix=_USER_PREFIX) if row[_USER_PREFIX + "id"] else None
    return token, _session(row), user


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


def purge_sessions(connection: Connection, *, over_before: datetime, limit: int) -> int:
    """Delete up to `limit` sessions that ended, or went idle, before `over_before` (their
    refresh tokens go with them); returns how many went.

    Two index range scans rather than one OR, which a planner answers by reading every
    session: a session's idle expiry never passes its absolute one, so idle covers both.
    """
    removed = 0
    for column in (sessions.c.ended_at, sessions.c.idle_expires_at):
        if removed >= limit:
            break
        doomed = select(sessions.c.id).where(column <= over_before).limit(limit - removed)
        result = connection.execute(delete(sessions).where(sessions.c.id.in_(doomed)))
        removed += int(result.rowcount or 0)
    return removed
