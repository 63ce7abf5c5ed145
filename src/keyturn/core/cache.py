"""A bounded cache with a time-to-live per entry (no I/O: what it holds is the caller's)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

Value = TypeVar("Value")
Key = TypeVar("Key", bound=Hashable)


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
