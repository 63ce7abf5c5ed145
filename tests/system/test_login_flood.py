"""A login flood against a real `keyturn serve` with costly Argon2.

Password hashing is the one slow thing a login does. A crowd of logins must wait for it in a
bounded queue of its own and be told `503 overloaded` beyond it; it must never hold up the
revocation poll (whose silence makes every token check answer 503) or anyone else's /me.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from tests.support.api import DEFAULT_PASSWORD, bearer
from tests.support.processes import ServerFactory

pytestmark = [pytest.mark.system, pytest.mark.serial]

# OWASP's memory cost with twice its passes: about 50 ms a hash here, as on a busy server.
COSTLY_HASHING = {
    "KEYTURN_ARGON2_MEMORY_KIB": "19456",
    "KEYTURN_ARGON2_TIME_COST": "4",
    # The flood is of correct passwords: the lockout (which counts attempts in flight) must
    # not be what turns it away.
    "KEYTURN_LOGIN_MAX_FAILURES": "1000",
}
FLOOD = 300
# Longer than KEYTURN_REVOCATION_MAX_STALENESS_SECONDS (5): a starved poll would show.
FLOOD_SECONDS = 8


async def register_and_log_in(api: httpx.AsyncClient, email: str) -> dict[str, Any]:
    created = await api.post(
        "/api/auth/register", json={"email": email, "password": DEFAULT_PASSWORD}
    )
    assert created.status_code == 201, created.text
    for _attempt in range(20):
        logged_in = await api.post(
            "/api/auth/login", json={"email": email, "password": DEFAULT_PASSWORD}
        )
        if logged_in.status_code != 503:
            break
        await asyncio.sleep(float(logged_in.headers["retry-after"]))
    assert logged_in.status_code == 200, logged_in.text
    body: dict[str, Any] = logged_in.json()
    return body


async def flood_logins(
    url: str, email: str, count: int, *, seconds: float = 0
) -> list[httpx.Response]:
    """`count` clients at once, each logging in again as soon as answered until `seconds`
    have passed (once, when 0); every answer."""
    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=count + 10)
    deadline = time.monotonic() + seconds
    answers: list[httpx.Response] = []

    async def client(crowd: httpx.AsyncClient) -> None:
        while True:
            answers.append(
                await crowd.post(
                    "/api/auth/login", json={"email": email, "password": DEFAULT_PASSWORD}
                )
            )
            if time.monotonic() >= deadline:
                return

    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as crowd:
        await asyncio.gather(*(client(crowd) for _ in range(count)))
    return answers


def assert_overloaded(response: httpx.Response) -> None:
    body = response.json()
    assert body["error"] == "overloaded", body
    assert body["message"]
    assert int(response.headers["retry-after"]) >= 1


async def test_a_login_flood_leaves_other_users_token_checks_answering(
    make_server: ServerFactory,
) -> None:
    """300 clients logging one account in over and over for 8 s: another user's /me
    answers 200 all the while (never 503), and the flood gets only 200, 429 or 503
    `overloaded` with Retry-After."""
    server = make_server(**COSTLY_HASHING)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as api:
        await register_and_log_in(api, "ada@example.com")
        bob = await register_and_log_in(api, "bob@example.com")
        flood = asyncio.create_task(
            flood_logins(server.url, "ada@example.com", FLOOD, seconds=FLOOD_SECONDS)
        )
        checks: list[tuple[int, str]] = []
        started = time.monotonic()
        while not flood.done():
            assert time.monotonic() - started < 50, "the flood did not end in time"
            me = await api.get("/api/auth/me", headers=bearer(bob["access_token"]))
            checks.append((me.status_code, me.text[:200]))
            await asyncio.sleep(0.05)
        answers = await flood

    assert len(checks) > 20
    assert [check for check in checks if check[0] != 200] == []
    statuses = {response.status_code for response in answers}
    assert statuses <= {200, 429, 503}, statuses
    assert 200 in statuses
    for response in answers:
        if response.status_code == 503:
            assert_overloaded(response)


async def test_logins_beyond_the_hashing_queue_are_told_overloaded(
    make_server: ServerFactory,
) -> None:
    """With one hashing thread and a queue of one, a burst of logins gets 503 `overloaded`
    with Retry-After for all it cannot hold, and the rest log in."""
    server = make_server(
        **COSTLY_HASHING, KEYTURN_HASHING_THREADS="1", KEYTURN_HASHING_QUEUE_MAX="1"
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as api:
        await register_and_log_in(api, "ada@example.com")
        answers = await flood_logins(server.url, "ada@example.com", 12)
        grant = {"grant_type": "password", "username": "ada@example.com"}
        oauth_answers = await asyncio.gather(
            *(
                api.post("/oauth/token", data={**grant, "password": DEFAULT_PASSWORD})
                for _ in range(8)
            )
        )

    statuses = sorted(response.status_code for response in answers)
    assert statuses.count(200) >= 1
    assert statuses.count(503) >= 6, statuses
    assert set(statuses) <= {200, 503}
    for response in answers:
        if response.status_code == 503:
            assert_overloaded(response)
    # RFC 6749 §5.2 has no `overloaded`: the token endpoint says temporarily_unavailable.
    refused = [response for response in oauth_answers if response.status_code == 503]
    assert len(refused) >= 4, [response.status_code for response in oauth_answers]
    for response in refused:
        assert response.json()["error"] == "temporarily_unavailable"
        assert int(response.headers["retry-after"]) >= 1


def metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} ") or (not labels and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_a_login_whose_client_hangs_up_while_queued_is_dropped_unhashed(
    make_server: ServerFactory,
) -> None:
    """Two slow logins hold the only hashing thread's places; five more queue behind them
    and hang up. The five are dropped before hashing: only the two log in."""
    server = make_server(
        **{**COSTLY_HASHING, "KEYTURN_ARGON2_TIME_COST": "40"},
        KEYTURN_HASHING_THREADS="1",
        KEYTURN_HASHING_QUEUE_MAX="10",
    )
    credentials = {"email": "ada@example.com", "password": DEFAULT_PASSWORD}
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as api:
        created = await api.post("/api/auth/register", json=credentials)
        assert created.status_code == 201, created.text
        holding = [
            asyncio.create_task(api.post("/api/auth/login", json=credentials)) for _ in range(2)
        ]
        await asyncio.sleep(0.05)
        async with httpx.AsyncClient(base_url=server.url, timeout=0.2) as impatient:
            hung_up = await asyncio.gather(
                *(impatient.post("/api/auth/login", json=credentials) for _ in range(5)),
                return_exceptions=True,
            )
        assert all(isinstance(outcome, httpx.TimeoutException) for outcome in hung_up)
        assert [(await task).status_code for task in holding] == [200, 200]
        # Long enough for the five to have been hashed, had they been kept.
        await asyncio.sleep(3)
        text = (await api.get("/metrics")).text

    assert metric(text, "keyturn_logins_total", outcome="ok") == 2
    assert metric(text, "keyturn_password_hashing_refused_total", reason="gone") == 5
