"""The rate limiters behind the RateLimiter protocol: in-process and Redis (with fallback)."""

from __future__ import annotations

import contextlib
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from keyturn.clock import FrozenClock
from keyturn.ratelimit.database import DatabaseRateLimiter
from keyturn.ratelimit.memory import MemoryRateLimiter
from keyturn.ratelimit.protocol import RateLimiter
from keyturn.ratelimit.redis import RedisRateLimiter
from keyturn.storage.db import Database
from keyturn.storage.migrations import upgrade_database
from keyturn.storage.redis import RedisLink
from tests.support.environment import RedisDatabase
from tests.support.processes import free_port

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


def test_undo_takes_back_one_hit_and_never_goes_below_zero(
    clock: FrozenClock, sqlite_url: str
) -> None:
    """Every limiter (the database one too) takes back exactly one hit per undo."""
    database = Database(sqlite_url)
    try:
        for limiter in (MemoryRateLimiter(clock), DatabaseRateLimiter(database, clock)):
            for _ in range(3):
                limiter.hit("k", limit=2, window=MINUTE)
            assert limiter.blocked_for("k", limit=2, window=MINUTE) == 60
            limiter.undo("k")
            assert limiter.blocked_for("k", limit=2, window=MINUTE) == 60  # 2 of 2
            limiter.undo("k")
            assert limiter.blocked_for("k", limit=2, window=MINUTE) is None
            for _ in range(5):
                limiter.undo("k")
                limiter.undo("never-hit")
            assert limiter.hit("k", limit=1, window=MINUTE) is None  # back at zero, not below
    finally:
        database.dispose()


@pytest.mark.redis
def test_redis_undo_keeps_the_window(
    redis_limiter: RedisRateLimiter, redis_database: RedisDatabase
) -> None:
    key = "test:" + secrets.token_hex(4)
    for _ in range(3):
        redis_limiter.hit(key, limit=2, window=MINUTE)
    redis_limiter.undo(key)
    assert redis_database.client.get("keyturn:ratelimit:" + key) == b"2"
    assert 0 < redis_database.client.pttl("keyturn:ratelimit:" + key) <= 60_000
    for _ in range(4):
        redis_limiter.undo(key)
    redis_limiter.undo("test:never-hit")
    assert redis_database.client.get("keyturn:ratelimit:" + key) == b"0"
    assert redis_database.client.exists("keyturn:ratelimit:test:never-hit") == 0


def _reserve_in_parallel(
    limiter: RateLimiter, key: str, *, attempts: int, limit: int
) -> list[int | None]:
    barrier = threading.Barrier(10)

    def reserve(_n: int) -> int | None:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=2)
        return limiter.reserve(key, limit=limit, window=MINUTE)

    with ThreadPoolExecutor(max_workers=10) as pool:
        return list(pool.map(reserve, range(attempts)))


def test_memory_reservations_in_parallel_admit_exactly_the_limit(clock: FrozenClock) -> None:
    """Forty reservations at once against a limit of seven: seven are counted, the rest are
    told how long to wait, and the refused ones leave no count behind."""
    limiter = MemoryRateLimiter(clock)
    results = _reserve_in_parallel(limiter, "k", attempts=40, limit=7)
    assert results.count(None) == 7
    assert all(wait == 60 for wait in results if wait is not None)
    limiter.undo("k")
    assert limiter.reserve("k", limit=7, window=MINUTE) is None  # 6 + 1: refusals added nothing


def test_database_reservations_in_parallel_admit_exactly_the_limit(
    clock: FrozenClock, database_url: str
) -> None:
    """The same on SQLite and PostgreSQL, each reservation in its own transaction."""
    database = Database(database_url)
    try:
        upgrade_database(database)
        limiter = DatabaseRateLimiter(database, clock)
        results = _reserve_in_parallel(limiter, "k", attempts=40, limit=7)
        assert results.count(None) == 7, results
        assert all(wait == 60 for wait in results if wait is not None)
        limiter.undo("k")
        assert limiter.reserve("k", limit=7, window=MINUTE) is None
        assert limiter.reserve("k", limit=7, window=MINUTE) == 60
        clock.advance(seconds=60)
        assert limiter.reserve("k", limit=7, window=MINUTE) is None  # a new window
    finally:
        database.dispose()


@pytest.mark.redis
def test_redis_reservations_from_two_instances_admit_exactly_the_limit(
    redis_database: RedisDatabase, clock: FrozenClock
) -> None:
    """Two limiters (two instances) on one Redis reserve forty times at once against a limit
    of seven: seven are counted in all, and the counter carries the window's TTL."""
    key = "test:" + secrets.token_hex(4)
    first = RedisRateLimiter(RedisLink(redis_database.url), fallback=MemoryRateLimiter(clock))
    second = RedisRateLimiter(RedisLink(redis_database.url), fallback=MemoryRateLimiter(clock))
    barrier = threading.Barrier(10)

    def reserve(n: int) -> int | None:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=2)
        return (first if n % 2 else second).reserve(key, limit=7, window=MINUTE)

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(reserve, range(40)))

    assert results.count(None) == 7
    assert all(wait is not None and 1 <= wait <= 60 for wait in results if wait is not None)
    assert redis_database.client.get("keyturn:ratelimit:" + key) == b"7"
    assert 0 < redis_database.client.pttl("keyturn:ratelimit:" + key) <= 60_000
