"""The Redis server: one client for blocking calls, and whether Redis is worth trying now.

Redis only ever speeds things up or spreads counters; the database stays the source of truth.
When Redis fails, callers fall back (counters to the database or this process, revocations to
the feed) and skip Redis for a moment instead of each paying a timeout.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
import redis.asyncio.retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from keyturn.errors import ServiceUnavailableError

logger = logging.getLogger("keyturn.redis")

RETRY_PAUSE_SECONDS = 1.0
_TIMEOUT_SECONDS = 1.0


def client_options(*, for_asyncio: bool = False) -> dict[str, Any]:
    """Options for a Redis client; `for_asyncio` for a `redis.asyncio` one, which takes its own
    kind of retry policy."""
    # One immediate retry on a broken connection (a pooled connection to a Redis that has
    # restarted fails once, then reconnects); none on timeouts, so a caller falls back
    # quickly, and the link decides when Redis is worth trying again.
    retry_kind = redis.asyncio.retry.Retry if for_asyncio else Retry
    return {
        "socket_timeout": _TIMEOUT_SECONDS,
        "socket_connect_timeout": _TIMEOUT_SECONDS,
        "retry": retry_kind(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,)),
        "health_check_interval": 5,
    }


class RedisLink:
    """One Redis server: a client for blocking calls, and when it last failed."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client: redis.Redis = redis.Redis.from_url(url, **client_options())
        self._down_until = 0.0
        self._down_since: float | None = None
        # Set when a revocation may have missed Redis; the subscriber rewrites them all.
        self._restore_wanted = True

    @property
    def is_up(self) -> bool:
        return time.monotonic() >= self._down_until

    @property
    def needs_restore(self) -> bool:
        """Whether a revocation may have missed Redis since the last restore."""
        return self._restore_wanted

    def request_restore(self) -> None:
        """A revocation may have missed Redis: have every live one written again."""
        self._restore_wanted = True

    def take_restore_request(self) -> bool:
        """Whether a restore is due, clearing the request: the caller restores."""
        wanted, self._restore_wanted = self._restore_wanted, False
        return wanted

    def mark_down(self, error: BaseException) -> None:
        now = time.monotonic()
        self._down_until = now + RETRY_PAUSE_SECONDS
        self._restore_wanted = True
        if self._down_since is None:
            self._down_since = now
            logger.warning("Redis is unavailable (%s); falling back", error.__class__.__name__)

    def note_success(self) -> None:
        if self._down_since is not None:
            self.mark_up()

    def mark_up(self) -> None:
        if self._down_since is not None:
            logger.warning("Redis is back after %.1f s", time.monotonic() - self._down_since)
        self._down_since = None
        self._down_until = 0.0

    def ping(self) -> None:
        """Raise ServiceUnavailableError unless Redis answers."""
        try:
            self.client.ping()
        except RedisError as error:
            self.mark_down(error)
            raise ServiceUnavailableError("Redis is unavailable; try again shortly.") from error
        self.note_success()

    def close(self) -> None:
        self.client.close()
