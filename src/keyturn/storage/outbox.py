"""The mail_outbox table: a request inserts; the sender in upkeep claims, sends and records.

A request writes its mail in its own transaction, so a message exists exactly when the change
that asked for it committed, and no request waits for, or is timed by, an SMTP server.
Claiming takes a lease (`claimed_until`): on PostgreSQL with FOR UPDATE SKIP LOCKED, so several
instances take disjoint batches; on SQLite the claim runs in a write transaction, and SQLite has
one writer at a time. A sender that dies mid-batch leaves leases that expire, and its mail is
claimed again. Every later statement names the claim token, so a sender whose lease ran out
cannot mark a message that another sender has claimed since.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from keyturn.storage.models import mail_outbox

PENDING: Final = "pending"
SENT: Final = "sent"
FAILED: Final = "failed"
_ERROR_LENGTH: Final = 500
FIRST_RETRY: Final = timedelta(seconds=5)
LONGEST_RETRY: Final = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class ClaimedMail:
    id: int
    name: str
    recipient: str
    user_id: str | None
    message: bytes
    attempts: int  # counting this one
    created_at: datetime
    claim_token: str


def enqueue_mail(
    connection: Connection,
    message: bytes,
    *,
    name: str,
    recipient: str,
    now: datetime,
    user_id: str | None = None,
) -> int:
    """Insert a message in the caller's transaction; due at once. Returns its id."""
    result = connection.execute(
        insert(mail_outbox)
        .values(
            name=name,
            recipient=recipient,
            user_id=user_id,
            message=message,
            status=PENDING,
            attempts=0,
            created_at=now,
            next_attempt_at=now,
        )
        .returning(mail_outbox.c.id)
    )
    return int(result.scalar_one())


def delete_mail(connection: Connection, mail_id: int) -> None:
    """Remove a message inserted in this transaction (a rehearsal's)."""
    connection.execute(delete(mail_outbox).where(mail_outbox.c.id == mail_id))


def _due(now: datetime) -> ColumnElement[bool]:
    return and_(
        mail_outbox.c.status == PENDING,
        mail_outbox.c.next_attempt_at <= now,
        or_(mail_outbox.c.claimed_until.is_(None), mail_outbox.c.claimed_until <= now),
    )


def has_due_mail(connection: Connection, *, now: datetime) -> bool:
    """Whether a claim would find anything: a read, so an idle sender never takes SQLite's
    write lock, which every login waits for."""
    found = connection.execute(select(mail_outbox.c.id).where(_due(now)).limit(1)).first()
    return found is not None


def claim_due_mail(
    connection: Connection, *, now: datetime, lease: timedelta, limit: int
) -> list[ClaimedMail]:
    """Lease up to `limit` due messages, oldest due first, counting an attempt on each."""
    due = _due(now)
    # SKIP LOCKED: a row another instance is claiming right now is left to it, not waited
    # for; SQLite compiles no FOR UPDATE (its write transaction already excludes others).
    # A MATERIALIZED CTE picks the batch once: as `IN (subquery ... LIMIT n)` PostgreSQL may
    # run the subquery again per row and claim more than `limit`.
    candidates = (
        select(mail_outbox.c.id)
        .where(due)
        .order_by(mail_outbox.c.next_attempt_at, mail_outbox.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("due_mail")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    token = secrets.token_hex(16)
    rows = connection.execute(
        update(mail_outbox)
        .where(mail_outbox.c.id.in_(select(candidates.c.id)), due)
        .values(
            claimed_until=now + lease,
            claim_token=token,
            attempts=mail_outbox.c.attempts + 1,
        )
        .returning(
            mail_outbox.c.id,
            mail_outbox.c.name,
            mail_outbox.c.recipient,
            mail_outbox.c.user_id,
            mail_outbox.c.message,
            mail_outbox.c.attempts,
            mail_outbox.c.created_at,
        )
    ).all()
    claimed = [
        ClaimedMail(
            id=row.id,
            name=row.name,
            recipient=row.recipient,
            user_id=row.user_id,
            message=bytes(row.message or b""),
            attempts=row.attempts,
            created_at=row.created_at,
            claim_token=token,
        )
        for row in rows
    ]
    return sorted(claimed, key=lambda mail: mail.id)


def _ours(mail: ClaimedMail) -> ColumnElement[bool]:
    return and_(
        mail_outbox.c.id == mail.id,
        mail_outbox.c.claim_token == mail.claim_token,
        mail_outbox.c.status == PENDING,
    )


def _end_claim(connection: Connection, mail: ClaimedMail, **values: object) -> bool:
    """Set `values` and let go of the claim, only while the claim is still ours (a sender
    whose lease ran out must not overwrite a later sender's outcome). False when it is not."""
    result = connection.execute(
        update(mail_outbox)
        .where(_ours(mail))
        .values(claimed_until=None, claim_token=None, **values)
    )
    return result.rowcount == 1


def mark_mail_sent(connection: Connection, mail: ClaimedMail, *, now: datetime) -> bool:
    """Record a delivery; the stored message (and the links in it) is dropped at once.
    False when the claim was lost meanwhile."""
    return _end_claim(connection, mail, status=SENT, finished_at=now, message=None, last_error=None)


def schedule_mail_retry(
    connection: Connection, mail: ClaimedMail, *, at: datetime, error: str
) -> bool:
    """Release the claim and try again at `at`, keeping why this attempt failed."""
    return _end_claim(connection, mail, next_attempt_at=at, last_error=error[:_ERROR_LENGTH])


def mark_mail_failed(
    connection: Connection, mail: ClaimedMail, *, now: datetime, error: str
) -> bool:
    """Give up on a message and record why; its stored copy is dropped."""
    return _end_claim(
        connection,
        mail,
        status=FAILED,
        finished_at=now,
        message=None,
        last_error=error[:_ERROR_LENGTH],
    )


def retry_at(
    attempts: int,
    *,
    now: datetime,
    created_at: datetime,
    max_attempts: int,
    max_age: timedelta,
    rng: random.Random,
) -> datetime | None:
    """When to try again after `attempts` failed tries, or None to give up.

    Exponential back-off from 5 s, at most 15 min, with jitter (half fixed, half random) so
    the mail of many instances does not hit a recovering server in the same second.
    """
    if attempts >= max_attempts:
        return None
    delay = min(LONGEST_RETRY, FIRST_RETRY * (1 << min(max(attempts - 1, 0), 16)))
    at = now + delay / 2 + delay / 2 * rng.random()
    if at - created_at >= max_age:
        return None
    return at


def count_pending_mail(connection: Connection) -> int:
    """Messages not yet sent nor given up (the outbox depth)."""
    return int(
        connection.execute(
            select(func.count()).select_from(mail_outbox).where(mail_outbox.c.status == PENDING)
        ).scalar_one()
    )


def purge_finished_mail(
    connection: Connection, *, sent_before: datetime, failed_before: datetime, limit: int
) -> int:
    """Delete up to `limit` sent messages finished before `sent_before` and failed ones
    finished before `failed_before`; returns how many."""
    old = (
        select(mail_outbox.c.id)
        .where(
            or_(
                and_(mail_outbox.c.status == SENT, mail_outbox.c.finished_at < sent_before),
                and_(mail_outbox.c.status == FAILED, mail_outbox.c.finished_at < failed_before),
            )
        )
        .limit(limit)
        .scalar_subquery()
    )
    return int(connection.execute(delete(mail_outbox).where(mail_outbox.c.id.in_(old))).rowcount)


def release_mail(connection: Connection, mail: ClaimedMail) -> bool:
    """Hand a claimed message back untried (the attempt it counted is taken back)."""
    return _end_claim(connection, mail, attempts=mail_outbox.c.attempts - 1)
