"""The revocation feed: what other processes revoked reaches this one by reading the
revocations table past this process's cursor. Gap-safe: a row that commits after later ones
is still read (see storage/revocations.py)."""

from __future__ import annotations

from keyturn.clock import Clock
from keyturn.revocation.service import RevocationService
from keyturn.storage import revocations as revocation_store
from keyturn.storage.db import Database
from keyturn.storage.revocations import FeedCursor, FeedRead


class RevocationFeed:
    """Reads the rows not read yet and applies them to the list every access check reads;
    upkeep polls it, start-up catches up with it."""

    def __init__(self, database: Database, clock: Clock, *, revocation: RevocationService) -> None:
        self._database = database
        self._clock = clock
        self._revocation = revocation
        self.cursor = FeedCursor()  # start-up reads every live row

    def fetch_new(self) -> FeedRead:
        """Blocking: the rows not read yet (run it in a thread)."""
        with self._database.snapshot() as connection:
            return revocation_store.read_feed(connection, self.cursor, now=self._clock.now())

    def apply_fetched(self, read: FeedRead) -> None:
        self._revocation.apply(read.revocations)
        # Whatever read came last, its cursor covers only rows it applied: an older one
        # makes the next read take some rows again, never skip one.
        self.cursor = read.cursor
        self._revocation.revocations.mark_synced()
        self._revocation.revocations.prune(now=self._clock.timestamp())

    def sync_now(self) -> None:
        """Blocking: catch up with the feed (start-up, tests)."""
        self.apply_fetched(self.fetch_new())
