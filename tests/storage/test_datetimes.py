"""Datetimes go in and come out as aware UTC on every backend, and compare in SQL by time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, select, text

from keyturn.storage.db import Database
from keyturn.storage.models import UTCDateTime

metadata = MetaData()
moments = Table(
    "moments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime(), nullable=True),
)


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    metadata.create_all(database.engine)
    yield database
    database.dispose()


def test_aware_datetimes_round_trip_as_utc(database: Database) -> None:
    """Any zone in, UTC out, to the microsecond; None stays None."""
    paris = timezone(timedelta(hours=1))
    written = [
        datetime(2026, 11, 24, 10, 30, 0, 0, tzinfo=paris),
        datetime(2026, 11, 24, 9, 30, 0, 123456, tzinfo=UTC),
        None,
    ]
    with database.transaction() as connection:
        for number, at in enumerate(written):
            connection.execute(moments.insert().values(id=number, at=at))
    with database.snapshot() as connection:
        read = [row.at for row in connection.execute(select(moments).order_by(moments.c.id))]

    assert read == [datetime(2026, 11, 24, 9, 30, tzinfo=UTC), written[1], None]
    assert read[0] is not None and read[0].tzinfo is UTC


def test_naive_datetimes_are_refused(database: Database) -> None:
    with pytest.raises(Exception, match="naive"), database.transaction() as connection:
        connection.execute(moments.insert().values(id=1, at=datetime(2026, 11, 24)))


def test_sql_comparisons_follow_time_order(database: Database) -> None:
    """A whole second and a fraction of it compare by time, not by text length."""
    base = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
    with database.transaction() as connection:
        for number, offset in enumerate([0, 0.5, 1, 1.000001]):
            connection.execute(
                moments.insert().values(id=number, at=base + timedelta(seconds=offset))
            )
    with database.snapshot() as connection:
        later = connection.execute(
            select(moments.c.id).where(moments.c.at > base + timedelta(seconds=0.5))
        )
        assert sorted(row.id for row in later) == [2, 3]


def test_sqlite_text_written_elsewhere_is_read(tmp_path) -> None:
    """Rows written by SQLAlchemy's own SQLite format, without a fraction, or with an offset,
    read back as the moment they name, in UTC."""
    database = Database(f"sqlite:///{tmp_path / 'old.db'}")
    metadata.create_all(database.engine)
    try:
        with database.transaction() as connection:
            connection.execute(
                text("INSERT INTO moments (id, at) VALUES (1, '2026-11-24 09:30:00.250000')")
            )
            connection.execute(
                text("INSERT INTO moments (id, at) VALUES (2, '2026-11-24 09:30:00')")
            )
            connection.execute(
                text("INSERT INTO moments (id, at) VALUES (3, '2026-11-24T10:30:00+01:00')")
            )
        with database.snapshot() as connection:
            read = [row.at for row in connection.execute(select(moments).order_by(moments.c.id))]
    finally:
        database.dispose()
    assert read == [
        datetime(2026, 11, 24, 9, 30, 0, 250000, tzinfo=UTC),
        datetime(2026, 11, 24, 9, 30, tzinfo=UTC),
        datetime(2026, 11, 24, 9, 30, tzinfo=UTC),
    ]
    assert all(moment.tzinfo is UTC for moment in read)
