"""The rate_limits table: fixed-window counters shared by every worker on one database."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import case, delete, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from keyturn.storage.models import UTCDateTime, rate_limits


def read_counter(
    connection: Connection, key: str, *, now: datetime, window: timedelta
) -> tuple[int, datetime]:
    """(count, window_started_at) of the live window; (0, now) when none is live."""
    row = connection.execute(
        select(rate_limits.c.count, rate_limits.c.window_started_at).where(rate_limits.c.key == key)
    ).first()
    if row is None or row[1] + window <= now:
        return 0, now
    count: int = row[0]
    started_at: datetime = row[1]
    return count, started_at


def increment_counter(
    connection: Connection, key: str, *, now: datetime, window: timedelta
) -> tuple[int, datetime]:
    """Add one hit atomically, starting a new window when the old one is over."""
    dialect = connection.dialect.name
    statement = (pg_insert if dialect == "postgresql" else sqlite_insert)(rate_limits)
    window_over = rate_limits.c.window_started_at <= now - window
    now_value = literal(now, UTCDateTime())
    upsert = statement.values(key=key, window_started_at=now, count=1).on_conflict_do_update(
        index_elements=[rate_limits.c.key],
        set_={
            "count": case((window_over, 1), else_=rate_limits.c.count + 1),
            "window_started_at": case(
                (window_over, now_value), else_=rate_limits.c.window_started_at
            ),
        },
    )
    connection.execute(upsert)
    return read_counter(connection, key, now=now, window=window)


def reserve_slot(
    connection: Connection, key: str, *, limit: int, now: datetime, window: timedelta
) -> bool:
    """Add one hit only while the live window holds fewer than `limit`; True when added.

    One conditional upsert: PostgreSQL locks the row for the update and SQLite writes one
    statement at a time, so parallel reservations never admit more than `limit`.
    """
    if limit < 1:
        return False
    dialect = connection.dialect.name
    statement = (pg_insert if dialect == "postgresql" else sqlite_insert)(rate_limits)
    window_over = rate_limits.c.window_started_at <= now - window
    now_value = literal(now, UTCDateTime())
    upsert = statement.values(key=key, window_started_at=now, count=1).on_conflict_do_update(
        index_elements=[rate_limits.c.key],
        set_={
            "count": case((window_over, 1), else_=rate_limits.c.count + 1),
            "window_started_at": case(
                (window_over, now_value), else_=rate_limits.c.window_started_at
            ),
        },
        where=window_over | (rate_limits.c.count < limit),
    )
    # A row comes back only when the insert or the update happened (rowcount is not
    # reliable for a skipped ON CONFLICT update on every driver).
    return connection.execute(upsert.returning(rate_limits.c.count)).first() is not None


def decrement_counter(connection: Connection, key: str) -> None:
    connection.execute(
        update(rate_limits)
        .where(rate_limits.c.key == key, rate_limits.c.count > 0)
        .values(count=rate_limits.c.count - 1)
    )


def reset_counter(connection: Connection, key: str) -> None:
    connection.execute(delete(rate_limits).where(rate_limits.c.key == key))


def purge_counters(connection: Connection, *, older_than: datetime) -> int:
    result = connection.execute(
        delete(rate_limits).where(rate_limits.c.window_started_at <= older_than)
    )
    return int(result.rowcount or 0)
