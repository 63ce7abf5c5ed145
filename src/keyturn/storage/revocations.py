"""The revocations table: an append-only feed every instance polls for ended sessions.

A reader must never pass over a row that commits after it has read: that row would be a
logout, a disabled account or a role change the reader never applies. See `read_feed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Text, and_, cast, delete, func, insert, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement, TextClause

from keyturn.core.sessions import Revocation
from keyturn.storage.models import revocations

FEED_PAGE = 5000  # rows a read of the feed asks for at once (SQLite)


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


@dataclass(frozen=True, slots=True)
class FeedCursor:
    """How far a reader has read the feed; `FeedCursor()` has read nothing yet.

    SQLite: `last_id`, the highest id read. PostgreSQL: `snapshot`, the database snapshot
    (pg_snapshot text) the last read was made in: every row of a transaction it shows
    committed has been read.
    """

    last_id: int = 0
    snapshot: str | None = None


@dataclass(frozen=True, slots=True)
class FeedRead:
    """The live rows a read found past its cursor, and where the next read starts."""

    revocations: list[Revocation]
    cursor: FeedCursor


def read_feed(connection: Connection, cursor: FeedCursor, *, now: datetime) -> FeedRead:
    """Every live row not read before `cursor`, whatever order transactions committed in."""
    if connection.dialect.name == "postgresql":
        return _read_by_snapshot(connection, cursor.snapshot, now=now)
    return _read_by_id(connection, cursor.last_id, now=now)


def _read_by_id(connection: Connection, last_id: int, *, now: datetime) -> FeedRead:
    # SQLite has one writer at a time: a transaction takes its ids and commits before the
    # next writer starts, so rows commit in id order and a reader that has seen id N has
    # seen every row below it. AUTOINCREMENT keeps a new row above N even after the purge
    # emptied the table. One read transaction, so the pages are of one state of the table.
    found: list[Revocation] = []
    while True:
        page = revocations_after(connection, last_id, now=now, limit=FEED_PAGE)
        found.extend(page)
        if page:
            last_id = page[-1].id
        if len(page) < FEED_PAGE:
            return FeedRead(found, FeedCursor(last_id=last_id))


# PostgreSQL hands out ids from a sequence before commit: a transaction can commit its row
# after a reader has read a higher id, and an id cursor would pass over it for good. So a
# read remembers the snapshot it read in instead; the next read takes the rows whose writing
# transaction that snapshot does not show as committed (in progress then, or begun since).
# Transactions below the snapshot's xmin had all ended when it was taken, so the index
# narrows the search to transaction_id >= xmin. A long transaction elsewhere only widens
# that range; it never delays a row nor hides one.
_NOT_SEEN = text(
    "NOT pg_visible_in_snapshot("
    "CAST(CAST(revocations.transaction_id AS TEXT) AS xid8), CAST(:seen AS pg_snapshot))"
)


def _read_by_snapshot(connection: Connection, seen: str | None, *, now: datetime) -> FeedRead:
    # One statement, so the snapshot it returns is the very one its rows were read in: the
    # next read takes exactly what this one could not see. The outer join gives one row
    # (the snapshot, no revocation) when nothing is new.
    current = select(cast(func.pg_current_snapshot(), Text).label("snapshot")).subquery()
    unseen: list[ColumnElement[bool] | TextClause] = [revocations.c.expires_at > now]
    if seen is not None:
        xmin = int(seen.split(":", 1)[0])  # "xmin:xmax:xip,..."
        unseen += [revocations.c.transaction_id >= xmin, _NOT_SEEN.bindparams(seen=seen)]
    query = (
        select(current.c.snapshot, revocations)
        .select_from(current.outerjoin(revocations, and_(*unseen)))
        .order_by(revocations.c.id)
    )
    rows = connection.execute(query).mappings().all()
    found = [
        Revocation(
            id=row["id"], kind=row["kind"], subject=row["subject"], expires_at=row["expires_at"]
        )
        for row in rows
        if row["id"] is not None
    ]
    return FeedRead(found, FeedCursor(snapshot=str(rows[0]["snapshot"])))


def purge_revocations(connection: Connection, *, now: datetime) -> int:
    result = connection.execute(delete(revocations).where(revocations.c.expires_at <= now))
    return int(result.rowcount or 0)
