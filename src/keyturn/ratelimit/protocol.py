"""The interfaces the services program against; memory, database and Redis implement them."""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol


class RateLimiter(Protocol):
    def blocked_for(self, key: str, *, limit: int, window: timedelta) -> int | None:
        """Seconds until `key` may try again, or None when it is under `limit`."""
        ...

    def hit(self, key: str, *, limit: int, window: timedelta) -> int | None:
        """Count one attempt; return seconds to wait when this attempt is over the limit."""
        ...

    def reserve(self, key: str, *, limit: int, window: timedelta) -> int | None:
        """Count one attempt only if `key` is under `limit`, in one atomic step; return None
        when it was counted, else seconds to wait (and nothing was counted). Parallel callers
        can never push the count past `limit`, however they interleave."""
        ...

    def undo(self, key: str) -> None:
        """Take back one hit: the attempt it counted turned out not to count (it succeeded,
        or was refused before being tried)."""
        ...

    def reset(self, key: str) -> None: ...
