"""In-process state: the revocation list every access check reads, and bounded caches."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

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
        self.cursor = 0
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
