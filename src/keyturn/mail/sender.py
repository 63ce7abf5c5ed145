"""The sender: runs in upkeep, empties the outbox, and is woken by the mail it was given.

It never runs inside a request: a request only inserts into the outbox (`Mailer.enqueue`), so
its reply takes the same time whether an account exists, and whether SMTP is up or slow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Mapping
from datetime import timedelta
from email.utils import parseaddr
from typing import Any, Final

from anyio import to_thread
from sqlalchemy import event
from sqlalchemy.engine import Connection

from keyturn.clock import Clock
from keyturn.config import Settings
from keyturn.errors import ServiceUnavailableError
from keyturn.mail.messages import MailComposer
from keyturn.mail.transports import (
    DeliveryError,
    PermanentDeliveryError,
    TemporaryDeliveryError,
    Transport,
)
from keyturn.observability import metrics
from keyturn.storage import audit as audit_store
from keyturn.storage import outbox
from keyturn.storage.db import Database

logger = logging.getLogger("keyturn.mail")
DEFAULT_MAIL_FROM: Final = "Keyturn <keyturn@localhost>"
BATCH_SIZE: Final = 50
POLL_SECONDS: Final = 2.0
DEPTH_EVERY_SECONDS: Final = 10.0
# After a wake-up finds nothing, look once more: the wake is sent as the enqueuing transaction
# commits, and on PostgreSQL the claim may read just before that commit is visible.
RECHECK_SECONDS: Final = 0.05
# A wake-up waits this long, so that delivering a message never competes with the reply to
# the request that queued it: that reply would take longer, and only when a mail was sent
# (a forgot-password reply would then say whether the address has an account).
WAKE_DELAY_SECONDS: Final = 0.05
SENT_RETENTION: Final = timedelta(hours=24)
FAILED_RETENTION: Final = timedelta(days=7)


def mail_lease(settings: Settings) -> timedelta:
    """How long a claim lasts: well past a few SMTP timeouts, so a live sender keeps it."""
    return timedelta(seconds=max(60.0, 4 * settings.smtp_timeout_seconds))


class Mailer:
    """What a use case calls: put a message in the outbox within its own transaction."""

    def __init__(self, settings: Settings, clock: Clock, *, sender: MailSender | None) -> None:
        self._clock = clock
        self._sender = sender
        self.composer = MailComposer(
            origin=settings.mail_origin, mail_from=settings.mail_from or DEFAULT_MAIL_FROM
        )

    def enqueue(
        self,
        connection: Connection,
        *,
        to: str,
        name: str,
        locale: str,
        variables: Mapping[str, Any],
        user_id: str | None = None,
    ) -> int:
        """Render message `name` (see mail.messages.MESSAGES) in `locale` for `to` and insert
        it in the transaction of `connection`; it is sent once that transaction commits, by
        the sender in upkeep. Returns the outbox id.

        Raises UnknownMessageError for an unknown name or a missing variable.
        """
        now = self._clock.now()
        message = self.composer.compose(name, to=to, locale=locale, variables=variables, now=now)
        mail_id = outbox.enqueue_mail(
            connection, message, name=name, recipient=to, now=now, user_id=user_id
        )
        if self._sender is not None:
            sender = self._sender
            event.listen(connection, "commit", lambda _connection: sender.wake(), once=True)
        return mail_id

    def rehearse(
        self,
        connection: Connection,
        *,
        to: str,
        name: str,
        locale: str,
        variables: Mapping[str, Any],
    ) -> None:
        """Do the work of enqueue() and keep nothing: render, serialize, insert, and delete
        the row again in the same transaction (cheaper on SQLite than a savepoint rolled
        back, which cost more than the real enqueue); the sender is not woken. For a flow
        whose reply must take as long whether or not it sends anything (a reset asked for an
        unknown address)."""
        now = self._clock.now()
        message = self.composer.compose(name, to=to, locale=locale, variables=variables, now=now)
        mail_id = outbox.enqueue_mail(connection, message, name=name, recipient=to, now=now)
        outbox.delete_mail(connection, mail_id)


class MailSender:
    """Claims due mail, hands it to the transport, records the outcome (and audits it)."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        clock: Clock,
        *,
        transport: Transport,
        batch_size: int = BATCH_SIZE,
        poll_seconds: float = POLL_SECONDS,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._database = database
        self._clock = clock
        self.transport = transport
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self._lease = mail_lease(settings)
        self._envelope_from = parseaddr(settings.mail_from or DEFAULT_MAIL_FROM)[1]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._depth_counted_at = 0.0

    def wake(self) -> None:
        """Look at the outbox shortly (safe from any thread; a no-op before `run`)."""
        loop, wakeup = self._loop, self._wakeup
        if loop is None or wakeup is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(loop.call_later, WAKE_DELAY_SECONDS, wakeup.set)

    async def run(self, stopping: asyncio.Event) -> None:
        """Deliver until `stopping` is set: at once when woken, else every poll."""
        self._loop = asyncio.get_running_loop()
        self._wakeup = wakeup = asyncio.Event()
        logger.info("mail goes to %s", getattr(self.transport, "description", self.transport.kind))
        outage = False
        woken = False
        while not stopping.is_set():
            handled = 0
            try:
                handled = await self.deliver_due()
                if handled == 0 and woken:
                    await asyncio.sleep(RECHECK_SECONDS)
                    handled = await self.deliver_due()
                await self._count_depth()
                if outage:
                    logger.warning("mail outbox reachable again")
                    outage = False
            except ServiceUnavailableError as error:
                if not outage:
                    logger.warning("mail outbox unavailable: %s", error.message)
                    outage = True
            except Exception:
                logger.warning("mail delivery round failed", exc_info=True)
            if handled >= self._batch_size:
                woken = False
                continue  # more is waiting
            woken = await self._wait(wakeup, stopping)
        await self.transport.close()

    async def _wait(self, wakeup: asyncio.Event, stopping: asyncio.Event) -> bool:
        """Until woken (True), stopping, or the poll interval passed (False)."""
        waiters = [
            asyncio.ensure_future(wakeup.wait()),
            asyncio.ensure_future(stopping.wait()),
        ]
        try:
            await asyncio.wait(
                waiters, timeout=self._poll_seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiter in waiters:
                waiter.cancel()
        woken = wakeup.is_set()
        wakeup.clear()
        return woken

    async def _count_depth(self) -> None:
        if time.monotonic() - self._depth_counted_at < DEPTH_EVERY_SECONDS:
            return
        self._depth_counted_at = time.monotonic()
        metrics.MAIL_OUTBOX_DEPTH.set(await to_thread.run_sync(self.count_pending))

    def count_pending(self) -> int:
        with self._database.snapshot() as connection:
            return outbox.count_pending_mail(connection)

    def _claim(self) -> list[outbox.ClaimedMail]:
        with self._database.snapshot() as connection:
            if not outbox.has_due_mail(connection, now=self._clock.now()):
                return []
        with self._database.transaction() as connection:
            return outbox.claim_due_mail(
                connection, now=self._clock.now(), lease=self._lease, limit=self._batch_size
            )

    async def deliver_due(self) -> int:
        """One round: claim a batch, send each, record each outcome. Returns how many were
        claimed."""
        claimed = await to_thread.run_sync(self._claim)
        if not claimed:
            return 0
        started = time.monotonic()
        try:
            for index, mail in enumerate(claimed):
                if time.monotonic() - started > self._lease.total_seconds() / 2:
                    # The rest would be sent close to the end of the lease, when another
                    # instance may claim them too: hand them back instead.
                    await to_thread.run_sync(self._release, claimed[index:])
                    break
                await self._deliver(mail)
        finally:
            await self.transport.close()
        return len(claimed)

    async def _deliver(self, mail: outbox.ClaimedMail) -> None:
        now = self._clock.now()
        max_age = timedelta(seconds=self._settings.mail_max_age_seconds)
        try:
            if now - mail.created_at >= max_age:
                raise PermanentDeliveryError("gave_up", "not sent before KEYTURN_MAIL_MAX_AGE")
            label = f"{mail.created_at:%Y%m%d-%H%M%S}-{mail.id}-{mail.name}"
            where = await self.transport.send(
                mail.message,
                envelope_from=self._envelope_from,
                recipient=mail.recipient,
                label=label,
            )
        except DeliveryError as error:
            await to_thread.run_sync(self._record_failure, mail, error)
            return
        await to_thread.run_sync(self._record_sent, mail)
        # The outbox id and where it went; never the recipient's link.
        logger.info("mail %s #%d delivered to %s", mail.name, mail.id, where)

    def _record_sent(self, mail: outbox.ClaimedMail) -> None:
        now = self._clock.now()
        with self._database.transaction() as connection:
            if not outbox.mark_mail_sent(connection, mail, now=now):
                return
            self._audit(connection, "mail_delivered", mail, reason=None)
        metrics.MAILS_DELIVERED.labels(mail.name).inc()

    def _record_failure(self, mail: outbox.ClaimedMail, error: DeliveryError) -> None:
        now = self._clock.now()
        detail = f"{error.reason}: {error}"
        at = None
        if isinstance(error, TemporaryDeliveryError):
            at = outbox.retry_at(
                mail.attempts,
                now=now,
                created_at=mail.created_at,
                max_attempts=self._settings.mail_max_attempts,
                max_age=timedelta(seconds=self._settings.mail_max_age_seconds),
                rng=self._rng,
            )
        with self._database.transaction() as connection:
            if at is not None:
                if outbox.schedule_mail_retry(connection, mail, at=at, error=detail):
                    metrics.MAIL_RETRIES.labels(error.reason).inc()
                    logger.warning(
                        "mail %s #%d not delivered (attempt %d, retry in %.0f s): %s",
                        mail.name,
                        mail.id,
                        mail.attempts,
                        (at - now).total_seconds(),
                        detail,
                    )
                return
            if isinstance(error, TemporaryDeliveryError):
                reason = "gave_up"
                detail = f"gave up after {mail.attempts} attempts; last: {detail}"
            else:
                reason = "gave_up" if error.reason == "gave_up" else "rejected"
            if not outbox.mark_mail_failed(connection, mail, now=now, error=detail):
                return
            self._audit(connection, "mail_failed", mail, reason=reason)
        metrics.MAILS_FAILED.labels(reason).inc()
        logger.warning("mail %s #%d failed: %s", mail.name, mail.id, detail)

    def _release(self, mails: list[outbox.ClaimedMail]) -> None:
        with self._database.transaction() as connection:
            for mail in mails:
                outbox.release_mail(connection, mail)

    def _audit(
        self,
        connection: Connection,
        event_name: str,
        mail: outbox.ClaimedMail,
        *,
        reason: str | None,
    ) -> None:
        detail: dict[str, Any] = {
            "mail": mail.name,
            "outbox_id": mail.id,
            "attempts": mail.attempts,
        }
        if reason is not None:
            detail["reason"] = reason
        audit_store.insert_event(
            connection, event=event_name, now=self._clock.now(), user_id=mail.user_id, detail=detail
        )
        metrics.count_event(event_name)

    def purge(self, connection: Connection, *, limit: int) -> int:
        """Delete up to `limit` rows sent over a day ago or failed over a week ago, in the
        caller's transaction. Sent rows no longer hold the message; the rows are kept only
        for an operator's questions."""
        now = self._clock.now()
        return outbox.purge_finished_mail(
            connection,
            sent_before=now - SENT_RETENTION,
            failed_before=now - FAILED_RETENTION,
            limit=limit,
        )
