"""A configured Redis that does not answer: /readyz says so, and nothing else breaks."""

from __future__ import annotations

import asyncio
import time

from tests.support.api import bearer, error_of, login, refresh
from tests.support.environment import ApiFactory
from tests.support.processes import free_port


async def test_unreachable_redis_is_named_by_readyz_and_requests_go_on(
    make_api: ApiFactory,
) -> None:
    """Counters fall back to the database and revocations to the database feed: logins,
    lockouts, refreshes and logouts on two instances work; /readyz answers 503 naming Redis."""
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    a = await make_api(redis_url=nowhere, login_max_failures=2)
    b = await make_api(redis_url=nowhere, login_max_failures=2)

    ready = await a.get("/readyz")
    assert error_of(ready) == (503, "service_unavailable")
    assert ready.json()["checks"] == {"database": "ok", "redis": "unavailable"}
    assert "redis" in ready.json()["message"].lower()

    tokens = await login(a)
    assert (await b.get("/api/auth/me", headers=bearer(tokens.access_token))).status_code == 200
    renewed = await refresh(b, tokens.refresh_token)
    assert renewed.status_code == 200
    access = renewed.json()["access_token"]

    assert (await a.post("/api/auth/logout", headers=bearer(access))).status_code == 204
    started = time.monotonic()
    while (await b.get("/api/auth/me", headers=bearer(access))).status_code == 200:
        assert time.monotonic() - started < 1.0, "B still accepts the token after 1 s"
        await asyncio.sleep(0.02)

    wrong = {"email": "ada@example.com", "password": "not the right passphrase"}
    assert [(await x.post("/api/auth/login", json=wrong)).status_code for x in (a, b, a)] == [
        401,
        401,
        429,
    ]
