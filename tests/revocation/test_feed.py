"""The revocation feed never skips a committed row, whatever order transactions commit in.

A writer and a reader built on one database are two instances of one deployment: the reader
learns of the writer's revocations only through the feed (no Redis here).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from keyturn.clock import FrozenClock
from keyturn.services.container import Services, build_services
from keyturn.storage import revocations as revocation_store

ON_POSTGRESQL = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
def instances(make_settings, clock: FrozenClock) -> Iterator[tuple[Services, Services]]:
    """(writer, reader): two instances on the test's database."""
    writer = build_services(make_settings(access_ttl_seconds=60), clock=clock)
    reader = build_services(make_settings(access_ttl_seconds=60), clock=clock)
    try:
        yield writer, reader
    finally:
        writer.database.dispose()
        reader.database.dispose()


def is_revoked(instance: Services, token_id: str) -> bool:
    return instance.revocation.revocations.is_revoked("no-such-session", token_id)


@ON_POSTGRESQL
def test_a_revocation_committed_after_a_later_one_still_arrives(
    instances: tuple[Services, Services],
) -> None:
    """A transaction that got its feed row first but commits last is still read: the reader
    has already polled past the later row when the earlier one becomes visible."""
    writer, reader = instances
    reader.feed.sync_now()
    with contextlib.ExitStack() as held:
        slow = held.enter_context(writer.revocation.batch())
        slow.revoke_token("held-jti")
        with writer.revocation.batch() as quick:
            quick.revoke_token("later-jti")

        reader.feed.sync_now()
        assert is_revoked(reader, "later-jti")
        assert not is_revoked(reader, "held-jti")  # not committed yet

    reader.feed.sync_now()

    assert is_revoked(reader, "held-jti")


@ON_POSTGRESQL
def test_a_revocation_in_flight_when_the_reader_starts_still_arrives(
    instances: tuple[Services, Services],
) -> None:
    """A row allocated but not committed when an instance first reads the feed (start-up)
    is read once it commits, though a later row was already there at start-up."""
    writer, reader = instances
    with contextlib.ExitStack() as held:
        slow = held.enter_context(writer.revocation.batch())
        slow.revoke_token("held-jti")
        with writer.revocation.batch() as quick:
            quick.revoke_token("later-jti")

        reader.feed.sync_now()  # the reader's first read, as at start-up
        assert is_revoked(reader, "later-jti")

    reader.feed.sync_now()

    assert is_revoked(reader, "held-jti")


@ON_POSTGRESQL
def test_an_open_transaction_does_not_make_the_feed_deliver_rows_again(
    instances: tuple[Services, Services],
) -> None:
    """While a transaction stays open, what the reader has read is not read again: the work
    of a poll stays what is new since the last one."""
    writer, reader = instances
    with contextlib.ExitStack() as held:
        slow = held.enter_context(writer.revocation.batch())
        slow.revoke_token("held-jti")
        for number in range(3):
            with writer.revocation.batch() as quick:
                quick.revoke_token(f"later-jti-{number}")

        first = reader.feed.fetch_new()
        reader.feed.apply_fetched(first)
        again = reader.feed.fetch_new()
        reader.feed.apply_fetched(again)

        assert sorted(row.subject for row in first.revocations) == [
            "later-jti-0",
            "later-jti-1",
            "later-jti-2",
        ]
        assert again.revocations == []

    last = reader.feed.fetch_new()

    assert [row.subject for row in last.revocations] == ["held-jti"]


def test_a_revocation_recorded_after_the_feed_emptied_still_arrives(
    instances: tuple[Services, Services], clock: FrozenClock
) -> None:
    """Once every row has expired and been purged, the next row gets an id above any the
    reader has seen, so the reader's cursor does not pass over it."""
    writer, reader = instances
    with writer.revocation.batch() as batch:
        batch.revoke_token("first-jti")
    reader.feed.sync_now()
    assert is_revoked(reader, "first-jti")
    clock.advance(seconds=600)
    writer.upkeep.purge()

    with writer.revocation.batch() as batch:
        batch.revoke_token("second-jti")
    reader.feed.sync_now()

    assert is_revoked(reader, "second-jti")


def test_a_read_takes_every_new_row_however_many(
    instances: tuple[Services, Services], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backlog larger than one page is read in one go (start-up, a reader back from an
    outage), not a page per poll while the list already counts as fresh."""
    monkeypatch.setattr(revocation_store, "FEED_PAGE", 2)
    writer, reader = instances
    with writer.revocation.batch() as batch:
        for number in range(5):
            batch.revoke_token(f"jti-{number}")

    reader.feed.sync_now()

    assert all(is_revoked(reader, f"jti-{number}") for number in range(5))
