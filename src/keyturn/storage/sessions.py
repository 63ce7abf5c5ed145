"""The sessions table (refresh tokens: storage/refresh_tokens.py).

The statements on the refresh path are built once, with bound parameters: building a
SQLAlchemy statement costs several times what executing it against SQLite does.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection

from keyturn.core.sessions import Session
from keyturn.storage.models import sessions, users
from keyturn.storage.prepared import Prepared


def session_from_row(row: Mapping[Any, Any]) -> Session:
    """A Session from a row holding every column of `sessions`."""
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
    return session_from_row(row) if row else None


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
    return [session_from_row(row) for row in rows]


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
