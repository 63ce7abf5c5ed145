"""Rate limits kept in the database: shared by every worker and instance without Redis."""

from __future__ import annotations

from datetime import timedelta
from math import ceil

from keyturn.clock import Clock
from keyturn.storage import rate_limits
from keyturn.storage.db import Database


class DatabaseRateLimiter:
    def __init__(self, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock

    def blocked_for(self, key: str, *, limit: int, window: timedelta) -> int | None:
        now = self._clock.now()
        with self._database.snapshot() as connection:
            count, started_at = rate_limits.read_counter(connection, key, now=now, window=window)
        if count < limit:
            return None
        return max(1, ceil((started_at + window - now).total_seconds()))

    def hit(self, key: str, *, limit: int, window: timedelta) -> int | None:
        now = self._clock.now()
        with self._database.transaction() as connection:
            count, started_at = rate_limits.increment_counter(
                connection, key, now=now, window=window
            )
        if count <= limit:
            return None
        return max(1, ceil((started_at + window - now).total_seconds()))

    def reserve(self, key: str, *, limit: int, window: timedelta) -> int | None:
        now = self._clock.now()
        with self._database.transaction() as connection:
            reserved = rate_limits.reserve_slot(
                connection, key, limit=limit, now=now, window=window
            )
            if reserved:
                return None
            _count, started_at = rate_limits.read_counter(connection, key, now=now, window=window)
        return max(1, ceil((started_at + window - now).total_seconds()))

    def undo(self, key: str) -> None:
        with self._database.transaction() as connection:
            rate_limits.decrement_counter(connection, key)

    def reset(self, key: str) -> None:
        with self._database.transaction() as connection:
            rate_limits.reset_counter(connection, key)
