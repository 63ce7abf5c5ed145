"""Issuing the links Keyturn mails: a single-use token stored as its digest, and the message
that carries it, written in the caller's transaction (so both exist exactly when the change
that asked for them commits)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Connection

from keyturn.clock import Clock
from keyturn.config import Settings
from keyturn.core.context import RequestContext
from keyturn.core.email_tokens import Purpose, hash_email_token, new_email_token
from keyturn.core.sessions import UserRecord
from keyturn.mail.sender import Mailer
from keyturn.services.audit import AuditTrail
from keyturn.storage import email_tokens as email_token_store


class EmailLinks:
    def __init__(self, settings: Settings, clock: Clock, *, mailer: Mailer, audit: AuditTrail):
        self._clock = clock
        self._mailer = mailer
        self._audit = audit
        self.verify_ttl = timedelta(seconds=settings.verify_ttl_seconds)
        self.reset_ttl = timedelta(seconds=settings.reset_ttl_seconds)

    @property
    def mailer(self) -> Mailer:
        return self._mailer

    def send_verification(
        self, connection: Connection, user: UserRecord, *, locale: str, context: RequestContext
    ) -> None:
        """Mail the user a link that confirms their address; audits `verification_sent`.
        Older verification links keep working until they expire: any of them proves the
        same mailbox."""
        token = new_email_token()
        now = self._clock.now()
        email_token_store.insert_email_token(
            connection,
            token_hash=hash_email_token(token),
            purpose=Purpose.VERIFY,
            user_id=user.id,
            email=user.email,
            now=now,
            expires_at=now + self.verify_ttl,
        )
        self._mailer.enqueue(
            connection,
            to=user.email,
            name="verify_email",
            locale=locale,
            variables={"token": token, "ttl_seconds": int(self.verify_ttl.total_seconds())},
            user_id=user.id,
        )
        self._audit.record(connection, "verification_sent", user_id=user.id, context=context)
