"""In-process state: the revocation list every access check reads, bounded caches, and
a rate limiter for counters that need not be shared between workers."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from datetime import timedelta
from math import ceil
from typing import Generic, TypeVar

from keyturn.clock import Clock

Value = TypeVar("Value")
Key = TypeVar("Key", bound=Hashable)


class RevocationList:
    """Ended sessions and revoked token ids, each kept until no token it covers can be valid.

    Fed by this process's own writes at once and by the shared feed; `synced_at` is
    monotonic time of the last successful sync, so a check can refuse to trust a stale list.
    """

    def __init__(self) -> None:
        self._sessions: dict[str, float] = {}
        self._tokens: dict[str, float] = {}
        self.synced_at = time.monotonic()

    def revoke_session(self, session_id: str, *, until: float) -> None:
        self._sessions[session_id] = max(until, self._sessions.get(session_id, 0.0))

    def revoke_token(self, token_id: str, *, until: float) -> None:
        self._tokens[token_id] = max(until, self._tokens.get(token_id, 0.0))

    def is_revoked(self, session_id: str, token_id: str) -> bool:
        return session_id in self._sessions or token_id in self._tokens

    def mark_synced(self) -> None:
        self.synced_at = time.monotonic()

    def staleness(self) -> float:
        return time.monotonic() - self.synced_at

    def prune(self, *, now: float) -> None:
        for table in (self._sessions, self._tokens):
            for subject in [subject for subject, until in table.items() if until <= now]:
                del table[subject]

    def live_entries(self, *, now: float) -> tuple[dict[str, float], dict[str, float]]:
        """Copies of (sessions, tokens), each subject mapped to the epoch time it lasts until."""
        sessions = {subject: until for subject, until in self._sessions.items() if until > now}
        tokens = {subject: until for subject, until in self._tokens.items() if until > now}
        return sessions, tokens

    def __len__(self) -> int:
        return len(self._sessions) + len(self._tokens)


class BoundedTtlCache(Generic[Key, Value]):
    """A dict with a size bound (oldest entries leave first) and a time-to-live per entry."""

    def __init__(self, *, max_entries: int, ttl_seconds: float) -> None:
        self._entries: OrderedDict[Key, tuple[float, Value]] = OrderedDict()
        self._max_entries = max_entries
        self._ttl = ttl_seconds

    def get(self, key: Key) -> Value | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        stored_at, value = entry
        if time.monotonic() - stored_at > self._ttl:
            self._entries.pop(key, None)
            return None
        return value

    def put(self, key: Key, value: Value) -> None:
        if self._max_entries <= 0 or self._ttl <= 0:
            return
        self._entries[key] = (time.monotonic(), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def discard(self, key: Key) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class MemoryRateLimiter:
    """Fixed-window counters in this process only: each worker counts its own share.

    For limits on hot paths (refresh) where a database write per request would cost more
    than the limit is worth; with N workers a client gets up to N times the limit.
    """

    def __init__(self, clock: Clock, *, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._windows: dict[str, tuple[int, float]] = {}  # key -> (count, window ends at)
        self._lock = threading.Lock()

    def blocked_for(self, key: str, *, limit: int, window: timedelta) -> int | None:
        now = self._clock.timestamp()
        with self._lock:
            count, ends_at = self._windows.get(key, (0, now))
        if ends_at <= now or count < limit:
            return None
        return max(1, ceil(ends_at - now))

    def hit(self, key: str, *, limit: int, window: timedelta) -> int | None:
        now = self._clock.timestamp()
        with self._lock:
            count, ends_at = self._windows.get(key, (0, now))
            if ends_at <= now:
                count, ends_at = 0, now + window.total_seconds()
            count += 1
            self._windows[key] = (count, ends_at)
            if len(self._windows) > self._max_keys:
                self._shrink(now)
        if count <= limit:
            return None
        return max(1, ceil(ends_at - now))

    def reserve(self, key: str, *, limit: int, window: timedelta) -> int | None:
        now = self._clock.timestamp()
        with self._lock:
            count, ends_at = self._windows.get(key, (0, now))
            if ends_at <= now:
                count, ends_at = 0, now + window.total_seconds()
            if count >= limit:
                return max(1, ceil(ends_at - now))
            self._windows[key] = (count + 1, ends_at)
            if len(self._windows) > self._max_keys:
                self._shrink(now)
        return None

    def undo(self, key: str) -> None:
        with self._lock:
            entry = self._windows.get(key)
            if entry is not None and entry[0] > 0:
                self._windows[key] = (entry[0] - 1, entry[1])

    def reset(self, key: str) -> None:
        with self._lock:
            self._windows.pop(key, None)

    def _shrink(self, now: float) -> None:
        for key in [key for key, (_count, ends_at) in self._windows.items() if ends_at <= now]:
            del self._windows[key]
        # Still full of live windows (a flood of addresses): the oldest keys go first, down
        # to nine tenths so the next hits do not each pay for another sweep.
        excess = len(self._windows) - self._max_keys * 9 // 10
        for key in list(self._windows)[: max(0, excess)]:
            del self._windows[key]

    def __len__(self) -> int:
        return len(self._windows)
