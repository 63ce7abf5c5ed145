"""Ending sessions, and making every instance refuse their access tokens within a second.

The database's revocations table is the feed: a write records the ended session in the same
transaction as the end itself; this process learns of it at once, every other process within
one poll (revocation/feed.py). Hooks (Redis pub/sub) may shorten that further. An access check
refuses to run on a list older than `revocation_max_staleness_seconds`: fail closed, never open.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from keyturn.clock import Clock
from keyturn.config import Settings
from keyturn.core.cache import BoundedTtlCache
from keyturn.core.sessions import (
    KIND_KEY,
    KIND_SESSION,
    KIND_TOKEN,
    KIND_USER,
    Revocation,
    UserRecord,
)
from keyturn.core.tokens import CLOCK_SKEW_SECONDS
from keyturn.errors import ServiceUnavailableError
from keyturn.revocation.list import RevocationList
from keyturn.storage import refresh_tokens as refresh_token_store
from keyturn.storage import revocations as revocation_store
from keyturn.storage import sessions as session_store
from keyturn.storage.db import Database

logger = logging.getLogger("keyturn.revocation")

RevocationHook = Callable[[list[Revocation]], None]


class RevocationService:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        clock: Clock,
        *,
        revocations: RevocationList,
        user_cache: BoundedTtlCache[str, UserRecord],
    ) -> None:
        self._settings = settings
        self._database = database
        self._clock = clock
        self.revocations = revocations
        self._user_cache = user_cache
        self._coverage = timedelta(seconds=settings.access_ttl_seconds + CLOCK_SKEW_SECONDS)
        self.hooks: list[RevocationHook] = []
        # Called with the kid of each signing key revoked (here, or on another instance).
        self.key_listeners: list[Callable[[str], None]] = []

    # Writing: in a transaction whose revocations are published once it has committed.

    @contextlib.contextmanager
    def batch(self) -> Iterator[RevocationBatch]:
        """A write transaction; what it revokes reaches every process only after commit."""
        with self._database.transaction() as connection:
            batch = RevocationBatch(self, connection)
            yield batch
        self.publish(batch.recorded)

    def now(self) -> datetime:
        return self._clock.now()

    def record(self, connection: Connection, kind: str, subject: str) -> Revocation:
        """Write one revocation to the feed, kept until no token it covers can be valid."""
        now = self._clock.now()
        expires_at = now + self._coverage
        revocation_store.record_revocation(
            connection, kind=kind, subject=subject, now=now, expires_at=expires_at
        )
        return Revocation(id=0, kind=kind, subject=subject, expires_at=expires_at)

    # Publishing, after commit.

    def publish(self, revocations: list[Revocation]) -> None:
        if not revocations:
            return
        self.apply(revocations)
        for hook in self.hooks:
            try:
                hook(revocations)
            except Exception:  # a hook only shortens the delay; the feed still delivers
                logger.warning("revocation hook failed", exc_info=True)

    def apply(self, revocations: list[Revocation]) -> None:
        for revocation in revocations:
            until = revocation.expires_at.timestamp()
            if revocation.kind == KIND_SESSION:
                self.revocations.revoke_session(revocation.subject, until=until)
            elif revocation.kind == KIND_TOKEN:
                self.revocations.revoke_token(revocation.subject, until=until)
            elif revocation.kind == KIND_USER:
                self._user_cache.discard(revocation.subject)
            elif revocation.kind == KIND_KEY:
                for listener in self.key_listeners:
                    listener(revocation.subject)

    def ensure_fresh(self) -> None:
        """Raise ServiceUnavailableError when the list may be missing recent revocations."""
        if self.revocations.staleness() > self._settings.revocation_max_staleness_seconds:
            raise ServiceUnavailableError(
                "Keyturn cannot confirm which sessions have ended (its database is out of"
                " reach); try again shortly."
            )


class RevocationBatch:
    """The revocations of one transaction (see RevocationService.batch); each method returns
    what it recorded."""

    def __init__(self, service: RevocationService, connection: Connection) -> None:
        self.connection = connection
        self._service = service
        self.recorded: list[Revocation] = []

    def end_sessions(self, session_ids: Iterable[str], *, reason: str) -> list[Revocation]:
        """End each session still live (their sealed successors are erased)."""
        now = self._service.now()
        ended: list[Revocation] = []
        for session_id in session_ids:
            if session_store.end_session(self.connection, session_id, reason=reason, now=now):
                refresh_token_store.forget_successor(self.connection, session_id)
                ended.append(self._record(KIND_SESSION, session_id))
        return ended

    def end_user_sessions(
        self, user_id: str, *, reason: str, keep: str | None = None
    ) -> list[Revocation]:
        live = session_store.live_session_ids(self.connection, user_id)
        return self.end_sessions([sid for sid in live if sid != keep], reason=reason)

    def revoke_token(self, token_id: str) -> list[Revocation]:
        return [self._record(KIND_TOKEN, token_id)]

    def user_changed(self, user_id: str) -> list[Revocation]:
        """Caches of this user are stale everywhere."""
        return [self._record(KIND_USER, user_id)]

    def _record(self, kind: str, subject: str) -> Revocation:
        revocation = self._service.record(self.connection, kind, subject)
        self.recorded.append(revocation)
        return revocation
