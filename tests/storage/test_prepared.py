"""Prepared statements run on the driver's own connection, and read and fail as SQLAlchemy would."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from keyturn.storage import refresh_tokens as refresh_token_store
from keyturn.storage.db import Database
from tests.support.rows import NOW, open_session


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


def test_a_lookup_reads_every_column_as_sqlalchemy_does(database: Database) -> None:
    """The refresh lookup, run on the driver, gives the mapping SQLAlchemy's own execution
    gives: aware UTC datetimes, booleans, None for what is unset."""
    open_session(database, "a" * 64)
    statement = refresh_token_store._FIND_REFRESH_TOKEN_WITH_USER

    with database.snapshot() as connection:
        direct = statement.first(connection, {"token_hash": "a" * 64})
        through_sqlalchemy = (
            connection.execute(statement.statement, {"token_hash": "a" * 64}).mappings().first()
        )

    assert direct is not None and through_sqlalchemy is not None
    assert dict(direct) == dict(through_sqlalchemy)
    assert direct["token_expires_at"] == NOW + timedelta(days=7)
    assert direct["token_expires_at"].tzinfo is not None
    assert direct["remember_me"] is True
    assert direct["rotated_at"] is None


def test_a_lookup_of_nothing_is_none(database: Database) -> None:
    with database.snapshot() as connection:
        assert refresh_token_store.find_refresh_token_with_user(connection, "b" * 64) is None


def test_a_write_counts_the_rows_it_touched(database: Database) -> None:
    """Claiming a rotation touches the row once; the second claim finds it taken."""
    open_session(database, "c" * 64)
    with database.transaction() as connection:
        found = refresh_token_store.find_refresh_token_with_user(connection, "c" * 64)
        assert found is not None
        token_id = found[0].id
        claims = [
            refresh_token_store.mark_rotated(
                connection, token_id, now=NOW, sealed_successor=b"sealed"
            )
            for _ in range(2)
        ]
    assert claims == [True, False]
    with database.snapshot() as connection:
        found = refresh_token_store.find_refresh_token_with_user(connection, "c" * 64)
    assert found is not None
    assert found[0].rotated_at == NOW
    assert found[0].sealed_successor == b"sealed"


def test_a_driver_error_arrives_as_sqlalchemy_wraps_it(database: Database) -> None:
    """A token hash stored twice breaks the unique index: the caller sees SQLAlchemy's
    IntegrityError (as from any other statement), and the transaction is rolled back."""
    session = open_session(database, "d" * 64)

    with pytest.raises(IntegrityError), database.transaction() as connection:
        for token_hash in ("e" * 64, "d" * 64):  # a new one, then the one already stored
            refresh_token_store.insert_refresh_token(
                connection,
                session_id=session.id,
                token_hash=token_hash,
                now=NOW,
                expires_at=NOW + timedelta(days=1),
            )

    with database.snapshot() as connection:
        assert refresh_token_store.find_refresh_token_with_user(connection, "e" * 64) is None
