"""The client's address and the login limits on real `keyturn serve` processes, with real
concurrent HTTP requests: a parallel burst from one address, two instances sharing Redis,
and X-Forwarded-For as a proxy that appends its own line sends it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support.api import DEFAULT_PASSWORD, bearer
from tests.support.environment import RedisDatabase
from tests.support.processes import ServerFactory

pytestmark = pytest.mark.system

WRONG_PASSWORD = "not the right passphrase"
LIMITS = {
    "KEYTURN_TRUSTED_PROXIES": "127.0.0.1",
    "KEYTURN_LOGIN_MAX_FAILURES": "5",
    "KEYTURN_LOGIN_MAX_FAILURES_PER_IP": "5",
    "KEYTURN_REGISTER_MAX_PER_IP": "100",
    "KEYTURN_ISSUER": "http://auth.keyturn.test",  # one deployment, one issuer
}


def register(base_url: str, email: str) -> None:
    created = httpx.post(
        f"{base_url}/api/auth/register", json={"email": email, "password": DEFAULT_PASSWORD}
    )
    assert created.status_code == 201, created.text


def burst(base_urls: list[str], *, accounts: int, ip: str) -> list[int]:
    """One wrong login per account, all sent at the same moment (spread over the servers),
    each on its own connection; the statuses, in order."""
    barrier = threading.Barrier(accounts)

    def attempt(n: int) -> int:
        with httpx.Client(base_url=base_urls[n % len(base_urls)], timeout=30) as client:
            barrier.wait(timeout=30)
            response = client.post(
                "/api/auth/login",
                json={"email": f"user{n}@example.com", "password": WRONG_PASSWORD},
                headers={"X-Forwarded-For": ip},
            )
            return response.status_code

    with ThreadPoolExecutor(max_workers=accounts) as pool:
        return list(pool.map(attempt, range(accounts)))


def test_parallel_burst_from_one_address_stops_at_its_limit(make_server: ServerFactory) -> None:
    """Thirty wrong passwords for thirty accounts sent at once from one address, limit five
    per address: at most five are tried (401), the rest are refused (429)."""
    server = make_server(**LIMITS)
    for n in range(30):
        register(server.url, f"user{n}@example.com")

    statuses = burst([server.url], accounts=30, ip="198.51.100.80")

    assert statuses.count(401) <= 5, statuses
    assert statuses.count(429) == 30 - statuses.count(401), statuses


@pytest.mark.postgres
@pytest.mark.redis
def test_parallel_burst_over_two_instances_sharing_redis_stops_at_the_limit(
    make_server: ServerFactory, postgres_url: str, redis_database: RedisDatabase
) -> None:
    """The same burst split over two servers that share PostgreSQL and Redis: the limit
    holds across them, five tries in all."""
    env = {**LIMITS, "KEYTURN_DATABASE_URL": postgres_url, "KEYTURN_REDIS_URL": redis_database.url}
    first, second = make_server(**env), make_server(**env)
    for n in range(30):
        register((first if n % 2 else second).url, f"user{n}@example.com")

    statuses = burst([first.url, second.url], accounts=30, ip="198.51.100.81")

    assert statuses.count(401) <= 5, statuses
    assert statuses.count(429) == 30 - statuses.count(401), statuses
    assert any(
        key.startswith("keyturn:ratelimit:login:ip:") for key in redis_database.keyturn_keys()
    )


def test_a_forged_first_forwarded_for_line_does_not_name_the_client(
    make_server: ServerFactory,
) -> None:
    """Behind a trusted proxy that appends its own X-Forwarded-For line (HAProxy's `option
    forwardfor`), what the client wrote in its own line is not believed: failures count
    against the address the proxy saw, whatever the client forges, and sessions show it."""
    server = make_server(**LIMITS)
    register(server.url, "ada@example.com")

    def log_in(password: str, *, forged: str, seen_by_proxy: str) -> httpx.Response:
        return httpx.post(
            f"{server.url}/api/auth/login",
            json={"email": "ada@example.com", "password": password},
            headers=[("X-Forwarded-For", forged), ("X-Forwarded-For", seen_by_proxy)],
        )

    ok = log_in(DEFAULT_PASSWORD, forged="203.0.113.66", seen_by_proxy="198.51.100.91")
    assert ok.status_code == 200, ok.text
    sessions = httpx.get(
        f"{server.url}/api/auth/sessions", headers=bearer(ok.json()["access_token"])
    ).json()["sessions"]
    assert [session["ip"] for session in sessions] == ["198.51.100.91"]

    guesses = [  # a new forged address each time, one real address
        httpx.post(
            f"{server.url}/api/auth/login",
            json={"email": f"user{n}@example.com", "password": WRONG_PASSWORD},
            headers=[("X-Forwarded-For", f"192.0.2.{n}"), ("X-Forwarded-For", "198.51.100.92")],
        ).status_code
        for n in range(6)
    ]
    assert guesses == [401] * 5 + [429]
