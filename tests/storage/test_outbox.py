"""The outbox statements: leases, back-off, purge."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest
from sqlalchemy import func, select

from keyturn.clock import FrozenClock
from keyturn.storage import outbox
from keyturn.storage.db import Database
from keyturn.storage.models import mail_outbox

LEASE = timedelta(seconds=60)


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.dispose()


def put(database: Database, clock: FrozenClock, n: int = 1) -> list[int]:
    message = EmailMessage()
    message["Subject"] = "x"
    message.set_content("body")
    raw = message.as_bytes()
    with database.transaction() as connection:
        return [
            outbox.enqueue_mail(
                connection,
                raw,
                name="verify_email",
                recipient=f"u{i}@example.com",
                now=clock.now(),
            )
            for i in range(n)
        ]


def claim(database: Database, clock: FrozenClock, limit: int = 10) -> list[outbox.ClaimedMail]:
    with database.transaction() as connection:
        return outbox.claim_due_mail(connection, now=clock.now(), lease=LEASE, limit=limit)


def test_a_dead_senders_claim_expires_and_it_cannot_record_afterwards(
    database: Database, clock: FrozenClock
) -> None:
    """A sender that claimed and died: the mail is claimed again once the lease ends, and the
    first claim can no longer mark it."""
    put(database, clock)
    [stale] = claim(database, clock)
    assert claim(database, clock) == []  # leased
    clock.advance(seconds=61)
    [fresh] = claim(database, clock)
    assert fresh.attempts == 2 and fresh.claim_token != stale.claim_token

    with database.transaction() as connection:
        assert not outbox.mark_mail_sent(connection, stale, now=clock.now())
        assert outbox.mark_mail_sent(connection, fresh, now=clock.now())
        assert not outbox.mark_mail_sent(connection, fresh, now=clock.now())


def test_claims_take_disjoint_batches_in_order(database: Database, clock: FrozenClock) -> None:
    ids = put(database, clock, 5)
    first = claim(database, clock, limit=3)
    second = claim(database, clock, limit=3)
    assert [m.id for m in first] == ids[:3]
    assert [m.id for m in second] == ids[3:]


def test_retry_waits_grow_and_stay_bounded() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    rng = random.Random(7)  # noqa: S311 - jitter in a test, not a secret
    waits = []
    for attempts in range(1, 12):
        at = outbox.retry_at(
            attempts,
            now=now,
            created_at=now,
            max_attempts=50,
            max_age=timedelta(days=30),
            rng=rng,
        )
        assert at is not None
        waits.append(at - now)
    assert timedelta(seconds=2.5) <= waits[0] <= timedelta(seconds=5)
    assert waits[3] > waits[1] > waits[0]
    assert max(waits) <= outbox.LONGEST_RETRY
    assert min(waits[-3:]) >= outbox.LONGEST_RETRY / 2


def test_retry_gives_up_at_the_attempt_and_age_bounds() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    rng = random.Random(1)  # noqa: S311 - jitter in a test, not a secret
    kwargs = {"now": now, "max_attempts": 3, "max_age": timedelta(hours=1), "rng": rng}
    assert outbox.retry_at(2, created_at=now, **kwargs) is not None  # type: ignore[arg-type]
    assert outbox.retry_at(3, created_at=now, **kwargs) is None  # type: ignore[arg-type]
    old = now - timedelta(minutes=59, seconds=58)
    assert outbox.retry_at(1, created_at=old, **kwargs) is None  # type: ignore[arg-type]


def test_purge_keeps_sent_rows_a_day_and_failed_rows_a_week(
    database: Database, clock: FrozenClock
) -> None:
    put(database, clock, 2)
    sent, failed = claim(database, clock)
    with database.transaction() as connection:
        outbox.mark_mail_sent(connection, sent, now=clock.now())
        outbox.mark_mail_failed(connection, failed, now=clock.now(), error="550 no")

    def remaining_after(days: float) -> int:
        now = clock.now() + timedelta(days=days)
        with database.transaction() as connection:
            outbox.purge_finished_mail(
                connection,
                sent_before=now - timedelta(days=1),
                failed_before=now - timedelta(days=7),
                limit=100,
            )
            return int(
                connection.execute(select(func.count()).select_from(mail_outbox)).scalar_one()
            )

    assert remaining_after(0.5) == 2
    assert remaining_after(2) == 1
    assert remaining_after(8) == 0
