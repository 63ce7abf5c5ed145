"""Rate-limit counters in Redis, shared by every process; the fallback counts while Redis is
out of reach."""

from __future__ import annotations

from datetime import timedelta
from math import ceil
from typing import Any

from redis.exceptions import RedisError

from keyturn.ratelimit.protocol import RateLimiter
from keyturn.storage.redis import RedisLink

RATE_LIMIT_PREFIX = "keyturn:ratelimit:"

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
