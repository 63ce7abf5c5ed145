"""What Keyturn keeps in Redis costs per 10,000 sessions, written by Keyturn's own code.

    .venv/bin/python -m bench.redis_memory [--count 10000] [--redis-url redis://host:port/N]

Without --redis-url a private redis-server (no persistence) is started on a free port, so
INFO memory sees nothing but these keys. Written, as the server writes them:
  * one revoked-session key per ended session (keyturn:revoked:sid:<sid>, TTL = access TTL
    + clock skew), through RevocationChannel.publish, one logout per call;
  * rate-limit counters through RedisRateLimiter.hit: a failed login's two (account and
    address), and a refresh's one (address), every one from a different address (worst case).
Reported: used_memory growth per family and per key, and MEMORY USAGE of a sample key.
With --redis-url only the keys written here are deleted afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from keyturn.clock import SystemClock
from keyturn.core.sessions import KIND_SESSION, Revocation
from keyturn.ratelimit.memory import MemoryRateLimiter
from keyturn.ratelimit.redis import RedisRateLimiter
from keyturn.revocation.channel import RevocationChannel
from keyturn.storage.redis import RedisLink

ACCESS_COVERAGE = timedelta(seconds=900 + 60)  # default access TTL + clock skew
LOGIN_WINDOW = timedelta(seconds=900)
REFRESH_WINDOW = timedelta(seconds=60)


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as directory:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
             "no", "--dir", directory],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"redis://127.0.0.1:{port}/0"
        try:
            client = redis.Redis.from_url(url)
            for _ in range(100):
                with contextlib.suppress(redis.ConnectionError):
                    client.ping()
                    break
                time.sleep(0.05)
            client.close()
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)


def used_memory(client: Any) -> int:
    return int(client.info("memory")["used_memory"])


def measure(client: Any, write: Callable[[int], None], count: int) -> int:
    before = used_memory(client)
    for n in range(count):
        write(n)
    return used_memory(client) - before


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="sessions (10000)")
    parser.add_argument("--redis-url", help="an existing Redis (default: a private one)")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        url = args.redis_url or stack.enter_context(private_redis())
        print(json.dumps(run(url, args.count, own=args.redis_url is None), indent=2))
    return 0


def run(url: str, count: int, *, own: bool) -> dict[str, Any]:
    link = RedisLink(url)
    client = redis.Redis.from_url(url)
    tag = "" if own else secrets.token_hex(4)  # on a shared Redis: mark this run's keys
    channel = RevocationChannel(link, origin="bench")
    limiter = RedisRateLimiter(link, fallback=MemoryRateLimiter(SystemClock()))
    session_ids = [f"{tag}{secrets.token_urlsafe(16)}" for _ in range(count)]

    def end_session(n: int) -> None:
        expires_at = datetime.now(UTC) + ACCESS_COVERAGE
        channel.publish([Revocation(0, KIND_SESSION, session_ids[n], expires_at)])

    def fail_login(n: int) -> None:
        limiter.hit(f"login:account:{tag}user{n}@example.com", limit=5, window=LOGIN_WINDOW)
        limiter.hit(f"login:ip:{tag}10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", limit=5,
                    window=LOGIN_WINDOW)  # fmt: skip

    def refresh(n: int) -> None:
        limiter.hit(f"refresh:ip:{tag}10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", limit=600,
                    window=REFRESH_WINDOW)  # fmt: skip

    started = time.perf_counter()
    revoked = measure(client, end_session, count)
    publish_us = (time.perf_counter() - started) / count * 1e6
    logins = measure(client, fail_login, count)
    refreshes = measure(client, refresh, count)
    sample_sid = "keyturn:revoked:sid:" + session_ids[0]
    sample_login = f"keyturn:ratelimit:login:account:{tag}user0@example.com"
    result = {
        "redis": url if not own else "private redis-server",
        "redis_version": client.info("server")["redis_version"],
        "sessions": count,
        "revoked_session_keys_bytes": revoked,
        "revoked_session_bytes_per_key": round(revoked / count, 1),
        "failed_login_counters_bytes (2 keys each)": logins,
        "refresh_counters_bytes": refreshes,
        "total_bytes": revoked + logins + refreshes,
        "total_mib": round((revoked + logins + refreshes) / 2**20, 2),
        "memory_usage_sample_sid_key": client.memory_usage(sample_sid),
        "memory_usage_sample_login_counter": client.memory_usage(sample_login),
        "ttl_ms_sample_sid_key": client.pttl(sample_sid),
        "ttl_ms_sample_login_counter": client.pttl(sample_login),
        "publish_per_logout_us": round(publish_us, 1),
    }
    for pattern in (f"keyturn:revoked:sid:{tag}*", f"keyturn:ratelimit:*{tag}*"):
        keys = list(client.scan_iter(match=pattern, count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    client.close()
    link.close()
    return result


if __name__ == "__main__":
    raise SystemExit(main())
