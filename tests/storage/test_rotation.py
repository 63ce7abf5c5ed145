"""A rotation's write: one caller claims the token and writes its successor; the rest write nothing.

On PostgreSQL the claim and its writes are one statement, on SQLite three: both must leave the
same rows behind, and both must let the row lock (or SQLite's write lock) pick one winner.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from keyturn.storage import refresh_tokens as refresh_token_store
from keyturn.storage import sessions as session_store
from keyturn.storage.db import Database
from keyturn.storage.models import refresh_tokens
from tests.support.rows import NOW, open_session

LATER = NOW + timedelta(minutes=5)
NEW_IDLE_EXPIRY = LATER + timedelta(days=7)


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


def token_id_of(database: Database, token_hash: str) -> int:
    with database.snapshot() as connection:
        found = refresh_token_store.find_refresh_token_with_user(connection, token_hash)
    assert found is not None
    return found[0].id


def rotate(database: Database, token_id: int, session_id: str, successor_hash: str) -> bool:
    with database.transaction() as connection:
        return refresh_token_store.rotate_refresh_token(
            connection,
            token_id,
            session_id=session_id,
            now=LATER,
            sealed_successor=b"sealed:" + successor_hash.encode(),
            successor_token_hash=successor_hash,
            idle_expires_at=NEW_IDLE_EXPIRY,
        )


def token_count(database: Database) -> int:
    with database.snapshot() as connection:
        return int(connection.execute(select(func.count()).select_from(refresh_tokens)).scalar())


def test_a_claimed_rotation_writes_the_successor_and_touches_the_session(
    database: Database,
) -> None:
    session = open_session(database, "a" * 64)
    token_id = token_id_of(database, "a" * 64)

    assert rotate(database, token_id, session.id, "b" * 64) is True

    with database.snapshot() as connection:
        old = refresh_token_store.find_refresh_token_with_user(connection, "a" * 64)
        new = refresh_token_store.find_refresh_token_with_user(connection, "b" * 64)
        touched = session_store.find_session(connection, session.id)
    assert old is not None and new is not None and touched is not None
    assert old[0].rotated_at == LATER
    assert old[0].sealed_successor == b"sealed:" + b"b" * 64
    assert new[0].session_id == session.id
    assert new[0].expires_at == NEW_IDLE_EXPIRY
    assert new[0].rotated_at is None
    assert touched.last_used_at == LATER
    assert touched.idle_expires_at == NEW_IDLE_EXPIRY


def test_a_second_claim_of_the_same_token_writes_nothing(database: Database) -> None:
    session = open_session(database, "c" * 64)
    token_id = token_id_of(database, "c" * 64)
    assert rotate(database, token_id, session.id, "d" * 64) is True

    assert rotate(database, token_id, session.id, "e" * 64) is False

    assert token_count(database) == 2
    with database.snapshot() as connection:
        assert refresh_token_store.find_refresh_token_with_user(connection, "e" * 64) is None
        old = refresh_token_store.find_refresh_token_with_user(connection, "c" * 64)
    assert old is not None
    assert old[0].sealed_successor == b"sealed:" + b"d" * 64  # the winner's, kept


def test_concurrent_claims_have_one_winner(database: Database) -> None:
    """The first transaction claims and holds its lock; the second waits for it, then finds
    the token taken and writes nothing."""
    session = open_session(database, "f" * 64)
    token_id = token_id_of(database, "f" * 64)
    first_claimed = threading.Event()
    let_first_commit = threading.Event()
    results: dict[str, bool] = {}

    def first() -> None:
        with database.transaction() as connection:
            results["first"] = refresh_token_store.rotate_refresh_token(
                connection,
                token_id,
                session_id=session.id,
                now=LATER,
                sealed_successor=b"first",
                successor_token_hash="1" * 64,
                idle_expires_at=NEW_IDLE_EXPIRY,
            )
            first_claimed.set()
            let_first_commit.wait(timeout=10)

    def second() -> None:
        first_claimed.wait(timeout=10)
        results["second"] = rotate(database, token_id, session.id, "2" * 64)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    first_claimed.wait(timeout=10)
    threads[1].join(timeout=0.5)
    assert threads[1].is_alive(), "the second claim should wait for the first transaction"
    let_first_commit.set()
    for thread in threads:
        thread.join(timeout=10)

    assert results == {"first": True, "second": False}
    assert token_count(database) == 2
    with database.snapshot() as connection:
        assert refresh_token_store.find_refresh_token_with_user(connection, "2" * 64) is None
