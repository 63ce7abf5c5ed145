"""Brute force and floods: failed logins per account and per address, registrations and
refreshes per address, and which address counts behind a proxy.

Each limit runs against the database counters (no Redis) and against Redis counters.
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from keyturn.cli.main import main as keyturn_cli
from keyturn.clock import FrozenClock
from tests.support.api import DEFAULT_PASSWORD, bearer, error_of, login, refresh, register
from tests.support.environment import TEST_CLIENT_ADDRESS, ApiFactory, RedisDatabase

PROXY = TEST_CLIENT_ADDRESS[0]  # the test client's socket address, trusted as a proxy below
WRONG_PASSWORD = "not the right passphrase"


@pytest.fixture(params=["database", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings overrides choosing where counters live."""
    if request.param == "redis":
        return {"redis_url": request.getfixturevalue("redis_url")}
    return {}


def from_address(ip: str) -> dict[str, str]:
    return {"X-Forwarded-For": ip}


async def attempt(
    api: httpx.AsyncClient, email: str, password: str, *, ip: str | None = None
) -> httpx.Response:
    headers = from_address(ip) if ip else {}
    return await api.post(
        "/api/auth/login", json={"email": email, "password": password}, headers=headers
    )


def assert_locked(response: httpx.Response, *, window: int) -> None:
    assert error_of(response) == (429, "too_many_requests")
    assert 1 <= int(response.headers["retry-after"]) <= window
    assert response.json()["message"]


async def test_failed_logins_lock_the_account_even_for_the_right_password(
    make_api: ApiFactory, backend: dict[str, Any]
) -> None:
    """Three failures from three addresses lock the account: the fourth attempt gets 429
    and Retry-After though its password is right and its address is new."""
    api = await make_api(login_max_failures=3, trusted_proxies=[PROXY], **backend)
    await register(api, "ada@example.com")
    for n in range(3):
        wrong = await attempt(api, "ada@example.com", WRONG_PASSWORD, ip=f"198.51.100.{n + 1}")
        assert error_of(wrong) == (401, "invalid_credentials")

    right = await attempt(api, "ADA@example.com", DEFAULT_PASSWORD, ip="198.51.100.99")

    assert_locked(right, window=900)
    other = await login(api, "bob@example.com")  # other accounts are not affected
    assert other.access_token


async def test_login_is_locked_after_max_failures_even_with_the_right_password(make_api) -> None:
    api = await make_api(login_max_failures=3)
    await register(api)
    for _ in range(3):
        await api.post(
            "/api/auth/login", json={"email": "ada@example.com", "password": "wrong password"}
        )
    locked = await api.post(
        "/api/auth/login", json={"email": "ada@example.com", "password": DEFAULT_PASSWORD}
    )
    assert error_of(locked) == (429, "too_many_requests")
    assert int(locked.headers["retry-after"]) > 0


async def test_failed_logins_lock_the_address_for_every_account(
    make_api: ApiFactory, backend: dict[str, Any]
) -> None:
    """Failures against several accounts (some unknown) from one address lock that address
    at KEYTURN_LOGIN_MAX_FAILURES_PER_IP; another address still logs in."""
    api = await make_api(login_max_failures_per_ip=3, trusted_proxies=[PROXY], **backend)
    await register(api, "ada@example.com")
    for email in ("ada@example.com", "nobody@example.com", "ghost@example.com"):
        await attempt(api, email, WRONG_PASSWORD, ip="198.51.100.7")

    locked = await attempt(api, "ada@example.com", DEFAULT_PASSWORD, ip="198.51.100.7")
    elsewhere = await attempt(api, "ada@example.com", DEFAULT_PASSWORD, ip="198.51.100.8")

    assert_locked(locked, window=900)
    assert elsewhere.status_code == 200


async def test_lock_lifts_after_the_window(make_api: ApiFactory, clock: FrozenClock) -> None:
    """After KEYTURN_LOGIN_WINDOW_SECONDS the right password works again."""
    api = await make_api(login_max_failures=2, login_window_seconds=60)
    await register(api, "ada@example.com")
    for _ in range(2):
        await attempt(api, "ada@example.com", WRONG_PASSWORD)
    assert_locked(await attempt(api, "ada@example.com", DEFAULT_PASSWORD), window=60)

    clock.advance(seconds=61)

    assert (await attempt(api, "ada@example.com", DEFAULT_PASSWORD)).status_code == 200


async def test_unknown_account_gets_the_same_answer_and_the_same_lock(
    make_api: ApiFactory, backend: dict[str, Any]
) -> None:
    """An unknown email gets exactly what a wrong password gets, and locks after the same
    number of failures: neither the answer nor the lock tells whether an account exists."""
    api = await make_api(login_max_failures=2, trusted_proxies=[PROXY], **backend)
    await register(api, "ada@example.com")
    known = [
        await attempt(api, "ada@example.com", WRONG_PASSWORD, ip=f"192.0.2.{n}") for n in (1, 2, 3)
    ]
    unknown = [
        await attempt(api, "nobody@example.com", WRONG_PASSWORD, ip=f"192.0.2.{n}")
        for n in (4, 5, 6)
    ]

    for a, b in zip(known, unknown, strict=True):
        assert a.status_code == b.status_code
        assert a.json() | {"message": ""} == b.json() | {"message": ""}
        assert a.json()["error"] == b.json()["error"]
        assert sorted(a.headers.keys()) == sorted(b.headers.keys())
    assert known[0].json() == unknown[0].json()
    assert [r.status_code for r in unknown] == [401, 401, 429]


async def test_registrations_are_limited_per_address(
    make_api: ApiFactory, backend: dict[str, Any]
) -> None:
    """KEYTURN_REGISTER_MAX_PER_IP attempts (refused ones too) per window, then 429."""
    api = await make_api(register_max_per_ip=3, trusted_proxies=[PROXY], **backend)
    here = from_address("198.51.100.20")
    for email, password in (
        ("a1@example.com", DEFAULT_PASSWORD),
        ("a2@example.com", "password"),  # refused as weak, still counted
        ("a1@example.com", DEFAULT_PASSWORD),  # duplicate, still counted
    ):
        response = await api.post(
            "/api/auth/register", json={"email": email, "password": password}, headers=here
        )
        assert response.status_code in (201, 409, 422)

    blocked = await api.post(
        "/api/auth/register",
        json={"email": "a3@example.com", "password": DEFAULT_PASSWORD},
        headers=here,
    )
    elsewhere = await api.post(
        "/api/auth/register",
        json={"email": "a3@example.com", "password": DEFAULT_PASSWORD},
        headers=from_address("198.51.100.21"),
    )

    assert_locked(blocked, window=900)
    assert elsewhere.status_code == 201


async def test_refreshes_are_limited_per_address(
    make_api: ApiFactory, backend: dict[str, Any]
) -> None:
    """KEYTURN_REFRESH_MAX_PER_IP refreshes a minute per address, then 429 even for a valid
    refresh token; another address is not affected."""
    api = await make_api(refresh_max_per_ip=3, trusted_proxies=[PROXY], **backend)
    tokens = await login(api)
    here = from_address("198.51.100.30")
    current = tokens.refresh_token
    for _ in range(3):
        response = await api.post(
            "/api/auth/refresh", json={"refresh_token": current}, headers=here
        )
        assert response.status_code == 200
        current = response.json()["refresh_token"]

    blocked = await api.post("/api/auth/refresh", json={"refresh_token": current}, headers=here)
    garbage = await api.post("/api/auth/refresh", json={"refresh_token": "x"}, headers=here)
    elsewhere = await api.post(
        "/api/auth/refresh",
        json={"refresh_token": current},
        headers=from_address("198.51.100.31"),
    )

    assert_locked(blocked, window=60)
    assert_locked(garbage, window=60)
    assert elsewhere.status_code == 200


async def test_refresh_limit_lifts_after_a_minute(make_api: ApiFactory, clock: FrozenClock) -> None:
    """The per-process refresh counter starts over each minute."""
    api = await make_api(refresh_max_per_ip=1)
    tokens = await login(api)
    first = await refresh(api, tokens.refresh_token)
    assert first.status_code == 200
    assert error_of(await refresh(api, first.json()["refresh_token"]))[0] == 429

    clock.advance(seconds=61)

    assert (await refresh(api, first.json()["refresh_token"])).status_code == 200


async def test_forwarded_for_is_ignored_from_untrusted_peers(make_api: ApiFactory) -> None:
    """Without KEYTURN_TRUSTED_PROXIES a client cannot dodge the address limit by sending
    X-Forwarded-For: every attempt counts against its socket address."""
    api = await make_api(login_max_failures_per_ip=2)
    await register(api, "ada@example.com")
    for n in range(2):
        await attempt(api, f"user{n}@example.com", WRONG_PASSWORD, ip=f"198.51.100.{n + 40}")

    response = await attempt(api, "ada@example.com", DEFAULT_PASSWORD, ip="198.51.100.49")

    assert_locked(response, window=900)


async def test_trusted_proxy_forwarded_for_names_the_client(make_api: ApiFactory) -> None:
    """Behind a trusted proxy the rightmost untrusted X-Forwarded-For hop is the client: what
    a client prepends is not believed, and sessions show the address that counted."""
    api = await make_api(login_max_failures_per_ip=2, trusted_proxies=[PROXY, "10.0.0.0/8"])
    await register(api, "ada@example.com")
    spoofed = "1.2.3.4, 198.51.100.50, 10.1.1.1"  # client-supplied, real client, inner proxy
    for n in range(2):
        await attempt(api, f"user{n}@example.com", WRONG_PASSWORD, ip=f"9.9.9.{n}, 198.51.100.50")

    locked = await attempt(api, "ada@example.com", DEFAULT_PASSWORD, ip=spoofed)
    assert_locked(locked, window=900)

    ok = await api.post(
        "/api/auth/login",
        json={"email": "ada@example.com", "password": DEFAULT_PASSWORD},
        headers=from_address("7.7.7.7, 198.51.100.51"),
    )
    assert ok.status_code == 200
    listed = await api.get("/api/auth/sessions", headers=bearer(ok.json()["access_token"]))
    assert [s["ip"] for s in listed.json()["sessions"]] == ["198.51.100.51"]


@pytest.mark.parametrize("header", ["not-an-ip", ", ,", "999.1.1.1", "a" * 4000, "ünïcode"])
async def test_odd_forwarded_for_values_fall_back_to_the_peer(
    make_api: ApiFactory, header: str
) -> None:
    """A malformed X-Forwarded-For never fails the request; the socket address counts."""
    api = await make_api(trusted_proxies=[PROXY])
    await register(api, "ada@example.com")
    response = await api.post(
        "/api/auth/login",
        json={"email": "ada@example.com", "password": DEFAULT_PASSWORD},
        headers={"X-Forwarded-For": header.encode("utf-8")},
    )
    assert response.status_code == 200
    listed = await api.get("/api/auth/sessions", headers=bearer(response.json()["access_token"]))
    assert listed.json()["sessions"][0]["ip"] == PROXY


@pytest.mark.redis
async def test_redis_counters_expire(make_api: ApiFactory, redis_database: RedisDatabase) -> None:
    """Every counter Keyturn keeps in Redis has a TTL no longer than its window, so Redis
    never grows without bound."""
    api = await make_api(redis_url=redis_database.url, login_window_seconds=120)
    tokens = await login(api)
    await refresh(api, tokens.refresh_token)
    await attempt(api, "ada@example.com", WRONG_PASSWORD)
    await attempt(api, "nobody@example.com", WRONG_PASSWORD)

    keys = [key for key in redis_database.keyturn_keys() if key.startswith("keyturn:ratelimit:")]

    assert {key.split(":")[2] for key in keys} == {"login", "register", "refresh"}
    for key in keys:
        ttl = redis_database.client.pttl(key)
        assert 0 < ttl <= 120_000, (key, ttl)


async def test_concurrent_guesses_do_not_overshoot_the_limit(
    make_api: ApiFactory, backend: dict[str, Any]
) -> None:
    """Twenty wrong passwords sent at once for one account: no more than the limit are even
    checked (401); the rest are refused with 429 before any password is verified."""
    api = await make_api(login_max_failures=3, trusted_proxies=[PROXY], **backend)
    await register(api, "ada@example.com")

    replies = await asyncio.gather(
        *(attempt(api, "ada@example.com", WRONG_PASSWORD, ip=f"198.51.100.{n}") for n in range(20))
    )

    statuses = sorted(reply.status_code for reply in replies)
    assert statuses.count(401) <= 3, statuses
    assert statuses.count(429) >= 17
    assert_locked(await attempt(api, "ada@example.com", DEFAULT_PASSWORD), window=900)


async def test_one_address_may_log_in_many_people_at_once(make_api: ApiFactory) -> None:
    """Successful logins never count against an address: ten people behind one office
    address log in at the same moment, and ten more one after another, with a per-address
    limit of ten; the address still has all its allowance for failures afterwards."""
    api = await make_api(login_max_failures_per_ip=10)
    for n in range(20):
        await register(api, f"user{n}@example.com")

    replies = await asyncio.gather(
        *(attempt(api, f"user{n}@example.com", DEFAULT_PASSWORD) for n in range(10))
    )
    one_by_one = [
        await attempt(api, f"user{n}@example.com", DEFAULT_PASSWORD) for n in range(10, 20)
    ]
    typos = [await attempt(api, f"user{n}@example.com", WRONG_PASSWORD) for n in range(11)]

    assert [reply.status_code for reply in replies + one_by_one] == [200] * 20
    assert [reply.status_code for reply in typos] == [401] * 10 + [429]


@pytest.fixture
def make_admin(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str
) -> Callable[[httpx.AsyncClient], Awaitable[dict[str, str]]]:
    """An admin created by `keyturn users create --role admin` (in this process, on the
    test's database), logged in; returns its bearer header."""

    async def make(api: httpx.AsyncClient) -> dict[str, str]:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("KEYTURN_DATABASE_URL", database_url)
        monkeypatch.setenv("KEYTURN_ARGON2_MEMORY_KIB", "1024")
        monkeypatch.setenv("KEYTURN_ARGON2_TIME_COST", "1")
        monkeypatch.setattr(sys, "stdin", io.StringIO(DEFAULT_PASSWORD + "\n"))
        arguments = "users create --email root@example.com --password-stdin --role admin"
        created = keyturn_cli(arguments.split())
        assert created == 0
        return bearer((await login(api, "root@example.com", create=False)).access_token)

    return make


async def audit_events(
    api: httpx.AsyncClient, admin: dict[str, str], event: str
) -> list[dict[str, Any]]:
    page = await api.get("/api/admin/audit", params={"event": event, "limit": 200}, headers=admin)
    assert page.status_code == 200, page.text
    events: list[dict[str, Any]] = page.json()["events"]
    return events


async def test_parallel_wrong_logins_from_one_address_stop_at_its_limit(
    make_api: ApiFactory, backend: dict[str, Any]
) -> None:
    """Thirty wrong passwords for thirty accounts sent at once from one address, with a
    per-address limit of five: five are tried (401), the other 25 are refused (429) before
    any password is checked; the address is then locked for the right password too."""
    api = await make_api(
        login_max_failures=5,
        login_max_failures_per_ip=5,
        register_max_per_ip=100,
        trusted_proxies=[PROXY],
        **backend,
    )
    for n in range(31):
        await register(api, f"user{n}@example.com")

    replies = await asyncio.gather(
        *(
            attempt(api, f"user{n}@example.com", WRONG_PASSWORD, ip="198.51.100.60")
            for n in range(30)
        )
    )

    statuses = [reply.status_code for reply in replies]
    assert statuses.count(401) == 5, statuses
    assert statuses.count(429) == 25, statuses
    assert_locked(
        await attempt(api, "user30@example.com", DEFAULT_PASSWORD, ip="198.51.100.60"), window=900
    )
    assert (
        await attempt(api, "user30@example.com", DEFAULT_PASSWORD, ip="198.51.100.61")
    ).status_code == 200


async def test_email_and_username_share_one_account_counter(
    make_api: ApiFactory, backend: dict[str, Any]
) -> None:
    """Failures by email and by username add up on the one account they name: three by
    email and two by username lock it at a limit of five."""
    api = await make_api(login_max_failures=5, trusted_proxies=[PROXY], **backend)
    await register(api, "ada@example.com", username="ada")
    for n in range(3):
        assert (
            await attempt(api, "ada@example.com", WRONG_PASSWORD, ip=f"192.0.2.{n}")
        ).status_code == 401
    for n in range(3, 5):
        by_username = await api.post(
            "/api/auth/login",
            json={"username": "ADA", "password": WRONG_PASSWORD},
            headers=from_address(f"192.0.2.{n}"),
        )
        assert error_of(by_username) == (401, "invalid_credentials")

    assert_locked(
        await attempt(api, "ada@example.com", DEFAULT_PASSWORD, ip="192.0.2.9"), window=900
    )


async def test_ipv6_addresses_in_one_64_share_a_counter(
    make_api: ApiFactory, backend: dict[str, Any]
) -> None:
    """A client hopping between addresses of its /64 is one client to the per-address
    limit; the next /64 is another client."""
    api = await make_api(login_max_failures_per_ip=3, trusted_proxies=[PROXY], **backend)
    await register(api, "ada@example.com")
    for n in range(1, 4):
        wrong = await attempt(api, f"user{n}@example.com", WRONG_PASSWORD, ip=f"2001:db8:1:2::{n}")
        assert wrong.status_code == 401

    hopped = await attempt(api, "ada@example.com", DEFAULT_PASSWORD, ip="2001:db8:1:2:ffff:1:2:3")
    neighbour = await attempt(api, "ada@example.com", DEFAULT_PASSWORD, ip="2001:db8:1:3::1")

    assert_locked(hopped, window=900)
    assert neighbour.status_code == 200


async def test_right_password_from_an_address_that_logged_in_before_passes_the_lock(
    make_api: ApiFactory, backend: dict[str, Any]
) -> None:
    """Someone guessing at an account locks it for new addresses, but its owner, from an
    address (IPv6: a /64) it logged in from before, still gets in with the right password;
    such an address has an allowance of its own, no larger than the account's."""
    api = await make_api(login_max_failures=3, trusted_proxies=[PROXY], **backend)
    await register(api, "ada@example.com")
    for ip in ("198.51.100.70", "2001:db8:7::1", "198.51.100.72"):
        assert (await attempt(api, "ada@example.com", DEFAULT_PASSWORD, ip=ip)).status_code == 200
    for n in range(3):
        await attempt(api, "ada@example.com", WRONG_PASSWORD, ip=f"203.0.113.{n + 100}")

    stranger = await attempt(api, "ada@example.com", DEFAULT_PASSWORD, ip="198.51.100.71")
    home = await attempt(api, "ada@example.com", DEFAULT_PASSWORD, ip="198.51.100.70")
    other_host_same_64 = await attempt(api, "ada@example.com", DEFAULT_PASSWORD, ip="2001:db8:7::9")
    guesses_from_a_known_address = [
        (await attempt(api, "ada@example.com", WRONG_PASSWORD, ip="198.51.100.72")).status_code
        for _ in range(4)
    ]

    assert_locked(stranger, window=900)
    assert home.status_code == 200
    assert other_host_same_64.status_code == 200
    assert guesses_from_a_known_address == [401, 401, 401, 429]
    assert_locked(
        await attempt(api, "ada@example.com", DEFAULT_PASSWORD, ip="198.51.100.72"), window=900
    )


async def test_password_change_guesses_are_limited_and_audited(
    make_api: ApiFactory,
    backend: dict[str, Any],
    make_admin: Callable[[httpx.AsyncClient], Awaitable[dict[str, str]]],
) -> None:
    """With an access token alone, the current password cannot be guessed at will: 25 wrong
    guesses get 401 up to the login limit and 429 after it, the right one too, from the
    address the owner logged in from; every wrong guess is in the audit trail."""
    api = await make_api(login_max_failures=5, **backend)
    admin = await make_admin(api)
    ada = await login(api, "ada@example.com")

    def change(current: str) -> Awaitable[httpx.Response]:
        return api.post(
            "/api/auth/password",
            json={"current_password": current, "new_password": "a brand new passphrase"},
            headers=bearer(ada.access_token),
        )

    wrong = [await change(f"guess number {n}") for n in range(25)]
    right = await change(DEFAULT_PASSWORD)

    assert [error_of(r) for r in wrong[:5]] == [(401, "invalid_credentials")] * 5
    for refused in [*wrong[5:], right]:
        assert_locked(refused, window=900)
    failed = await audit_events(api, admin, "password_change_failed")
    locked = await audit_events(api, admin, "password_change_locked")
    assert [event["user_id"] for event in failed] == [ada.user["id"]] * 5
    assert [event["user_id"] for event in locked] == [ada.user["id"]] * 21
    assert (await login(api, "ada@example.com", create=False)).access_token  # known address


async def test_every_forwarded_for_line_is_read_and_the_proxys_own_wins(
    make_api: ApiFactory,
) -> None:
    """A trusted proxy that appends its own X-Forwarded-For line after the client's: the
    client's line cannot name the address that counts, however it changes."""
    api = await make_api(login_max_failures_per_ip=2, trusted_proxies=[PROXY])
    await register(api, "ada@example.com")

    def lines(forged: str) -> list[tuple[str, str]]:
        return [("X-Forwarded-For", forged), ("X-Forwarded-For", "198.51.100.95")]

    for n in range(2):
        await api.post(
            "/api/auth/login",
            json={"email": f"user{n}@example.com", "password": WRONG_PASSWORD},
            headers=lines(f"192.0.2.{n}"),
        )
    locked = await api.post(
        "/api/auth/login",
        json={"email": "ada@example.com", "password": DEFAULT_PASSWORD},
        headers=lines("192.0.2.99"),
    )

    assert_locked(locked, window=900)
