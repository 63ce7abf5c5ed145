"""Shared state in Redis: rate-limit counters, the revoked-session keys other services read,
and the channel that tells every Keyturn process about a revocation at once.

Redis only ever speeds things up or spreads counters; the database's revocation feed stays
the source of truth. When Redis fails, callers fall back (counters to the database or this
process, revocations to the feed) and skip Redis for a moment instead of each paying a
timeout; the subscriber rewrites every live revocation into Redis once it is back.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from math import ceil
from typing import Any

import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from keyturn import wire
from keyturn.errors import ServiceUnavailableError
from keyturn.state.protocols import RateLimiter
from keyturn.storage.revocations import KIND_SESSION, KIND_TOKEN, KIND_USER, Revocation

logger = logging.getLogger("keyturn.redis")

RATE_LIMIT_PREFIX = "keyturn:ratelimit:"
RETRY_PAUSE_SECONDS = 1.0
_TIMEOUT_SECONDS = 1.0
_RESTORE_BATCH = 1000
_KEY_PREFIXES = {
    KIND_SESSION: wire.REDIS_REVOKED_SESSION_PREFIX,
    KIND_TOKEN: wire.REDIS_REVOKED_TOKEN_PREFIX,
}

# INCR and the window's expiry in one step, so no counter is ever left without a TTL.
_HIT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""

# Count only while under the limit (ARGV[2]), in one step: parallel reservations from any
# number of processes never admit more than the limit. Returns {1 if counted, ttl}.
_RESERVE_SCRIPT = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count >= tonumber(ARGV[2]) then
  return {0, redis.call('PTTL', KEYS[1])}
end
redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {1, ttl}
"""

# Never below zero, and never on a counter whose window is over (the key is gone).
_UNDO_SCRIPT = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count > 0 then
  return redis.call('DECR', KEYS[1])
end
return 0
"""


def _client_options() -> dict[str, Any]:
    # One immediate retry on a broken connection (a pooled connection to a Redis that has
    # restarted fails once, then reconnects); none on timeouts, so a caller falls back
    # quickly, and the link decides when Redis is worth trying again.
    return {
        "socket_timeout": _TIMEOUT_SECONDS,
        "socket_connect_timeout": _TIMEOUT_SECONDS,
        "retry": Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,)),
        "health_check_interval": 5,
    }


class RedisLink:
    """One Redis server: a client for blocking calls, and when it last failed."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client: redis.Redis = redis.Redis.from_url(url, **_client_options())
        self._down_until = 0.0
        self._down_since: float | None = None
        # Set when a revocation may have missed Redis; the subscriber rewrites them all.
        self.needs_restore = True

    @property
    def is_up(self) -> bool:
        return time.monotonic() >= self._down_until

    def mark_down(self, error: BaseException) -> None:
        now = time.monotonic()
        self._down_until = now + RETRY_PAUSE_SECONDS
        self.needs_restore = True
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


class RedisRateLimiter:
    """Fixed-window counters shared by every process through Redis, each key with a TTL.

    While Redis is out of reach the `fallback` counts instead; counts do not carry across.
    """

    def __init__(
        self, link: RedisLink, *, fallback: RateLimiter, prefix: str = RATE_LIMIT_PREFIX
    ) -> None:
        self._link = link
        self._fallback = fallback
        self._prefix = prefix
        self._hit = link.client.register_script(_HIT_SCRIPT)
        self._undo = link.client.register_script(_UNDO_SCRIPT)
        self._reserve = link.client.register_script(_RESERVE_SCRIPT)

    def blocked_for(self, key: str, *, limit: int, window: timedelta) -> int | None:
        if self._link.is_up:
            try:
                pipeline = self._link.client.pipeline(transaction=False)
                pipeline.get(self._prefix + key)
                pipeline.pttl(self._prefix + key)
                count, ttl_ms = pipeline.execute()
            except RedisError as error:
                self._link.mark_down(error)
            else:
                self._link.note_success()
                if count is None or int(count) < limit:
                    return None
                return _seconds(ttl_ms, window)
        return self._fallback.blocked_for(key, limit=limit, window=window)

    def hit(self, key: str, *, limit: int, window: timedelta) -> int | None:
        if self._link.is_up:
            window_ms = max(1, int(window.total_seconds() * 1000))
            try:
                count, ttl_ms = self._hit(keys=[self._prefix + key], args=[window_ms])
            except RedisError as error:
                self._link.mark_down(error)
            else:
                self._link.note_success()
                if int(count) <= limit:
                    return None
                return _seconds(ttl_ms, window)
        return self._fallback.hit(key, limit=limit, window=window)

    def reserve(self, key: str, *, limit: int, window: timedelta) -> int | None:
        if self._link.is_up:
            window_ms = max(1, int(window.total_seconds() * 1000))
            try:
                counted, ttl_ms = self._reserve(keys=[self._prefix + key], args=[window_ms, limit])
            except RedisError as error:
                self._link.mark_down(error)
            else:
                self._link.note_success()
                return None if int(counted) else _seconds(ttl_ms, window)
        return self._fallback.reserve(key, limit=limit, window=window)

    def undo(self, key: str) -> None:
        if self._link.is_up:
            try:
                self._undo(keys=[self._prefix + key])
            except RedisError as error:
                self._link.mark_down(error)
            else:
                return
        self._fallback.undo(key)

    def reset(self, key: str) -> None:
        if self._link.is_up:
            try:
                self._link.client.delete(self._prefix + key)
            except RedisError as error:
                self._link.mark_down(error)
            else:
                return
        self._fallback.reset(key)


def _seconds(ttl_ms: Any, window: timedelta) -> int:
    ttl = int(ttl_ms)
    if ttl < 0:  # no such key or no TTL: should not happen, so wait a whole window
        return max(1, ceil(window.total_seconds()))
    return max(1, ceil(ttl / 1000))


def revoked_key(kind: str, subject: str) -> str | None:
    """The Redis key other services check for this revocation; None for kinds they ignore."""
    prefix = _KEY_PREFIXES.get(kind)
    return prefix + subject if prefix else None


class RevocationChannel:
    """Writes revocations where other services look (a key per session or token id, alive
    until no access token it covers can be valid) and announces them to every Keyturn
    process on one pub/sub channel."""

    def __init__(self, link: RedisLink, *, origin: str) -> None:
        self.link = link
        self.origin = origin

    def publish(self, revocations: Sequence[Revocation]) -> None:
        """Best effort, after commit: on failure the feed still delivers, and the subscriber
        rewrites the keys once Redis is back."""
        if not revocations:
            return
        if not self.link.is_up:
            self.link.needs_restore = True
            return
        now = time.time()
        try:
            pipeline = self.link.client.pipeline(transaction=False)
            for revocation in revocations:
                key = revoked_key(revocation.kind, revocation.subject)
                ttl_ms = _ttl_ms(revocation.expires_at.timestamp(), now=now)
                if key is not None and ttl_ms > 0:
                    pipeline.set(key, "1", px=ttl_ms)
            pipeline.publish(
                wire.REDIS_REVOCATION_CHANNEL, encode_message(self.origin, revocations)
            )
            pipeline.execute()
        except RedisError as error:
            self.link.mark_down(error)

    def restore(self, sessions: dict[str, float], tokens: dict[str, float]) -> int:
        """Blocking: write every live revocation's key again (after an outage or a Redis
        restart that lost them). Returns how many keys were written."""
        now = time.time()
        entries = [
            (wire.REDIS_REVOKED_SESSION_PREFIX + subject, _ttl_ms(until, now=now))
            for subject, until in sessions.items()
        ] + [
            (wire.REDIS_REVOKED_TOKEN_PREFIX + subject, _ttl_ms(until, now=now))
            for subject, until in tokens.items()
        ]
        entries = [(key, ttl_ms) for key, ttl_ms in entries if ttl_ms > 0]
        for start in range(0, len(entries), _RESTORE_BATCH):
            pipeline = self.link.client.pipeline(transaction=False)
            for key, ttl_ms in entries[start : start + _RESTORE_BATCH]:
                pipeline.set(key, "1", px=ttl_ms)
            pipeline.execute()
        return len(entries)

    @contextlib.asynccontextmanager
    async def subscription(self) -> AsyncIterator[RevocationSubscription]:
        """Subscribe on a connection of the running event loop; raises RedisError."""
        client = redis.asyncio.Redis.from_url(self.link.url, **_client_options())
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(wire.REDIS_REVOCATION_CHANNEL)
            yield RevocationSubscription(pubsub, origin=self.origin)
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()


class RevocationSubscription:
    def __init__(self, pubsub: Any, *, origin: str) -> None:
        self._pubsub = pubsub
        self._origin = origin

    async def receive(self, *, timeout: float) -> list[Revocation]:
        """Revocations other processes announced, or [] when none came within `timeout`.
        Raises RedisError when the connection is lost."""
        message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
        if message is None or message.get("type") != "message":
            return []
        origin, revocations = decode_message(message.get("data"))
        return [] if origin == self._origin else revocations


def _ttl_ms(until: float, *, now: float) -> int:
    # Relative, not PXAT: Redis may run on a host whose clock disagrees with ours.
    return ceil((until - now) * 1000)


def encode_message(origin: str, revocations: Iterable[Revocation]) -> str:
    return json.dumps(
        {
            "origin": origin,
            "revocations": [
                [revocation.kind, revocation.subject, revocation.expires_at.timestamp()]
                for revocation in revocations
            ],
        },
        separators=(",", ":"),
    )


def decode_message(data: Any) -> tuple[str | None, list[Revocation]]:
    """(origin, revocations) of a channel message; anything malformed is skipped."""
    try:
        payload = json.loads(data)
        origin = payload.get("origin")
        items = payload.get("revocations")
    except (TypeError, ValueError, AttributeError):
        logger.warning("ignored a malformed revocation message")
        return None, []
    revocations: list[Revocation] = []
    for item in items if isinstance(items, list) else []:
        if not (isinstance(item, list) and len(item) == 3):
            continue
        kind, subject, expires_at = item
        if (
            kind in (KIND_SESSION, KIND_TOKEN, KIND_USER)
            and isinstance(subject, str)
            and 0 < len(subject) <= 128
            and isinstance(expires_at, int | float)
            and not isinstance(expires_at, bool)
        ):
            try:
                when = datetime.fromtimestamp(expires_at, UTC)
            except (OverflowError, OSError, ValueError):
                continue
            revocations.append(Revocation(id=0, kind=kind, subject=subject, expires_at=when))
    return origin if isinstance(origin, str) else None, revocations
