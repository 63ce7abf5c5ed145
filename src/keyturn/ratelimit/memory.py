"""A rate limiter for counters that need not be shared between workers."""

from __future__ import annotations

import threading
from datetime import timedelta
from math import ceil

from keyturn.clock import Clock


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
