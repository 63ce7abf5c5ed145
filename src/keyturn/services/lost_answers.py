"""Answers lost in a crash: a rotation that committed but never reached its client.

A refresh commits its rotation before the answer leaves; if the process dies in between (or
the machine, or the network before the client reads), the client still holds the parent token
and retries with it. Within the grace window the retry gets the sealed successor back; after
it, the retry would be taken for theft and the user logged out for Keyturn's own crash.

A start of an instance is the server's evidence that answers may have been lost, so each
start is recorded (in the audit trail, once per process). A rotated token presented after
the grace window still gets its same successor when all of these hold:

- an instance started after the rotation committed, at most KEYTURN_REFRESH_RECOVERY_SECONDS
  ago (the process that answered may have died before the answer left);
- the successor has never been presented (its holder, whoever that is, has not moved on).

Theft detection stays: once the successor has been used, any later use of the parent is
reuse and ends the session; and the parent only ever gets the one successor already sealed
for it, never a new branch, so a thief and the victim holding one token is caught at the next
rotation (one of them presents a rotated token). This path runs only where a refresh would
otherwise end a session as reused, never on an ordinary refresh.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from keyturn.clock import Clock
from keyturn.config import Settings
from keyturn.core.context import NO_CONTEXT
from keyturn.core.refresh import StoredRefreshToken, hash_refresh_token, open_successor
from keyturn.services.audit import AuditTrail
from keyturn.storage import audit as audit_store
from keyturn.storage import refresh_tokens as refresh_token_store
from keyturn.storage.db import Database

INSTANCE_STARTED = "instance_started"


class LostAnswers:
    """Records instance starts, and finds the successor a retry after a crash should get."""

    def __init__(self, settings: Settings, clock: Clock, *, audit: AuditTrail) -> None:
        self._clock = clock
        self._audit = audit
        self._window = timedelta(seconds=settings.refresh_recovery_seconds)

    @property
    def enabled(self) -> bool:
        return bool(self._window)

    def record_start(self, database: Database) -> None:
        """Write down that this process starts serving (blocking; once, at start-up)."""
        with database.transaction() as connection:
            self._audit.record(
                connection, INSTANCE_STARTED, context=NO_CONTEXT, detail={"pid": os.getpid()}
            )

    def successor_to_resend(
        self,
        connection: Connection,
        stored: StoredRefreshToken,
        parent_token: str,
        *,
        now: datetime,
    ) -> str | None:
        """The successor sealed for `parent_token` when its answer may have been lost in a
        crash (see the module's rules); None when the reuse stands."""
        if not self._window or stored.rotated_at is None or stored.sealed_successor is None:
            return None
        since = max(stored.rotated_at, now - self._window)
        if not audit_store.has_event_since(connection, INSTANCE_STARTED, since=since):
            return None
        successor = open_successor(parent_token, stored.sealed_successor)
        if successor is None:
            return None
        if not refresh_token_store.is_unused_refresh_token(
            connection, hash_refresh_token(successor)
        ):
            return None
        return successor
