"""The rate limiters behind the RateLimiter protocol: in-process and Redis (with fallback)."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from keyturn.clock import FrozenClock
from keyturn.state.memory import MemoryRateLimiter
from keyturn.state.redis import RedisLink, RedisRateLimiter
from tests.conftest import RedisDatabase
from tests.system.processes import free_port

MINUTE = timedelta(minutes=1)


def test_memory_limiter_counts_a_fixed_window(clock: FrozenClock) -> None:
    limiter = MemoryRateLimiter(clock)
    assert [limiter.hit("k", limit=2, window=MINUTE) for _ in range(3)] == [None, None, 60]
    assert limiter.blocked_for("k", limit=2, window=MINUTE) == 60
    assert limiter.blocked_for("other", limit=2, window=MINUTE) is None
    clock.advance(seconds=45)
    assert limiter.blocked_for("k", limit=2, window=MINUTE) == 15
    clock.advance(seconds=15)
    assert limiter.blocked_for("k", limit=2, window=MINUTE) is None
    assert limiter.hit("k", limit=2, window=MINUTE) is None
    limiter.reset("k")
    assert len(limiter) == 0


def test_memory_limiter_stays_bounded(clock: FrozenClock) -> None:
    """A flood of distinct addresses cannot grow the table past its bound."""
    limiter = MemoryRateLimiter(clock, max_keys=100)
    for n in range(1000):
        limiter.hit(f"ip:{n}", limit=5, window=MINUTE)
        assert len(limiter) <= 100
    clock.advance(seconds=61)
    limiter.hit("fresh", limit=5, window=MINUTE)
    assert len(limiter) <= 100


@pytest.fixture
def redis_limiter(redis_database: RedisDatabase, clock: FrozenClock) -> RedisRateLimiter:
    link = RedisLink(redis_database.url)
    return RedisRateLimiter(link, fallback=MemoryRateLimiter(clock))


@pytest.mark.redis
def test_redis_limiter_counts_atomically(
    redis_limiter: RedisRateLimiter, redis_database: RedisDatabase
) -> None:
    """Fifty concurrent hits with a limit of ten: exactly ten get through, and the counter
    carries a TTL of the window."""
    key = "test:" + secrets.token_hex(4)
    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(
            pool.map(lambda _: redis_limiter.hit(key, limit=10, window=MINUTE), range(50))
        )
    assert results.count(None) == 10
    assert all(wait is not None and 1 <= wait <= 60 for wait in results if wait is not None)
    assert redis_limiter.blocked_for(key, limit=10, window=MINUTE) is not None
    assert redis_limiter.blocked_for(key, limit=51, window=MINUTE) is None
    assert 0 < redis_database.client.pttl("keyturn:ratelimit:" + key) <= 60_000
    redis_limiter.reset(key)
    assert redis_limiter.blocked_for(key, limit=10, window=MINUTE) is None


def test_redis_limiter_falls_back_when_redis_is_away(clock: FrozenClock) -> None:
    """With nothing listening, the fallback counts; after the first failure Redis is not
    even tried until the retry pause is over."""
    link = RedisLink(f"redis://127.0.0.1:{free_port()}/0")
    fallback = MemoryRateLimiter(clock)
    limiter = RedisRateLimiter(link, fallback=fallback)

    waits = [limiter.hit("k", limit=2, window=MINUTE) for _ in range(3)]

    assert waits == [None, None, 60]
    assert not link.is_up
    assert limiter.blocked_for("k", limit=2, window=MINUTE) == 60
    limiter.reset("k")
    assert len(fallback) == 0
