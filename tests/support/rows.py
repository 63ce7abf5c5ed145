"""Rows the storage tests start from: a user with one session and its refresh token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from keyturn.core.sessions import Session, new_session_id
from keyturn.storage import refresh_tokens as refresh_token_store
from keyturn.storage import sessions as session_store
from keyturn.storage import users as user_store
from keyturn.storage.db import Database

NOW = datetime(2026, 12, 2, 9, 30, 15, 250_000, tzinfo=UTC)


def open_session(database: Database, token_hash: str) -> Session:
    session = Session(
        id=new_session_id(NOW),
        user_id="u" * 32,
        created_at=NOW,
        last_used_at=NOW,
        idle_expires_at=NOW + timedelta(days=7),
        absolute_expires_at=NOW + timedelta(days=30),
        ended_at=None,
        remember_me=True,
        user_agent="tests",
        ip="192.0.2.7",
        client_id="default",
        auth_time=NOW,
        amr=("pwd",),
    )
    with database.transaction() as connection:
        user_store.insert_user(
            connection,
            user_id=session.user_id,
            email="ada@example.com",
            username="ada",
            password_hash="$argon2id$not-checked-here",
            roles=("user", "admin"),
            now=NOW,
        )
        session_store.insert_session(connection, session)
        refresh_token_store.insert_refresh_token(
            connection,
            session_id=session.id,
            token_hash=token_hash,
            now=NOW,
            expires_at=session.idle_expires_at,
        )
    return session
