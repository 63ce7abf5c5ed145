"""Outages: Redis or the database goes away and comes back while two servers run.

Never is a revoked token accepted; what cannot be served gets 503 `service_unavailable`
with a sentence (no stack trace); /readyz names the dependency that is down; and service
comes back by itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.api import DEFAULT_PASSWORD, bearer
from tests.support.instances import (
    HttpxCaller,
    RedisServer,
    Reply,
    TcpProxy,
    log_in,
    new_user,
    refused_within,
    session_id_of,
)
from tests.support.processes import ServerFactory

pytestmark = [pytest.mark.system, pytest.mark.postgres, pytest.mark.redis]

ISSUER = {"KEYTURN_ISSUER": "http://auth.keyturn.test"}


def eventually(check: Callable[[], Any], *, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.1)


def assert_unavailable(reply: Reply, *, mentions: str) -> None:
    assert reply.error == (503, "service_unavailable"), reply.body
    assert mentions in reply.body["message"].lower()
    assert "traceback" not in str(reply.body).lower()
    assert reply.headers.get("retry-after")


def readiness(caller: HttpxCaller) -> tuple[int, dict[str, str]]:
    reply = caller.call("GET", "/readyz")
    return reply.status, reply.body.get("checks", {})


def test_redis_outage_falls_back_to_the_database_and_heals(
    make_server: ServerFactory, postgres_url: str, own_redis: RedisServer
) -> None:
    """Redis killed: both servers go on (counters and revocations through the database),
    logout on B still reaches A within a second, /readyz names Redis. Redis restarted empty:
    /readyz is green again by itself and the keys of sessions revoked during the outage are
    written back for the services that read Redis."""
    env = {**ISSUER, "KEYTURN_DATABASE_URL": postgres_url, "KEYTURN_REDIS_URL": own_redis.url}
    a = HttpxCaller(make_server(**env).url, "A")
    b = HttpxCaller(make_server(**env).url, "B")
    before = new_user(a, "ada@example.com")
    assert b.call("POST", "/api/auth/logout", headers=bearer(before["access_token"])).status == 204
    during = log_in(a, "ada@example.com").body

    own_redis.kill()

    for caller in (a, b):
        _status, checks = eventually(
            lambda c=caller: (r := readiness(c))[0] == 503 and r, seconds=5, what="readyz 503"
        )
        assert checks == {"database": "ok", "redis": "unavailable"}
        body = caller.call("GET", "/readyz").body
        assert body["error"] == "service_unavailable" and "redis" in body["message"].lower()
    assert a.call("GET", "/api/auth/me", headers=bearer(during["access_token"])).status == 200
    wrong = log_in(b, "ada@example.com", "not the right passphrase")
    assert wrong.error == (401, "invalid_credentials")
    assert b.call("POST", "/api/auth/logout", headers=bearer(during["access_token"])).status == 204
    refused_within(a, during["access_token"], seconds=1.0)
    refused_within(b, before["access_token"], seconds=1.0)
    after = log_in(b, "ada@example.com")
    assert after.status == 200
    refreshed = a.call(
        "POST", "/api/auth/refresh", json_body={"refresh_token": after.body["refresh_token"]}
    )
    assert refreshed.status == 200

    own_redis.start()  # same port, empty: every key is gone

    for caller in (a, b):
        eventually(lambda c=caller: readiness(c)[0] == 200, seconds=10, what="readyz 200")
    redis = own_redis.client()
    try:
        for tokens in (before, during):
            key = "keyturn:revoked:sid:" + session_id_of(tokens["access_token"])
            eventually(lambda k=key: redis.get(k) == b"1", seconds=5, what=f"{key} restored")
            assert redis.pttl(key) > 0
    finally:
        redis.close()
    live = refreshed.body["access_token"]
    assert b.call("GET", "/api/auth/me", headers=bearer(live)).status == 200
    for tokens in (before, during):
        refused = a.call("GET", "/api/auth/me", headers=bearer(tokens["access_token"]))
        assert refused.error == (401, "invalid_token")
    a.client.close()
    b.client.close()


def test_database_outage_fails_closed_and_heals(
    make_server: ServerFactory,
    database_proxy: tuple[TcpProxy, str],
    own_redis: RedisServer,
) -> None:
    """The database cut off: logins and logouts get 503 at once, access checks get 503 once
    the revocation list is older than KEYTURN_REVOCATION_MAX_STALENESS_SECONDS (they can no
    longer know what was revoked elsewhere), /readyz names the database. Restored: all of it
    works again by itself, a session revoked before the outage stays revoked, and a refresh
    refused by the outage leaves its token as it was."""
    proxy, database_url = database_proxy
    server = make_server(
        **ISSUER,
        KEYTURN_DATABASE_URL=database_url,
        KEYTURN_REDIS_URL=own_redis.url,
        KEYTURN_REVOCATION_POLL_SECONDS="0.2",
        KEYTURN_REVOCATION_MAX_STALENESS_SECONDS="1.5",
    )
    api = HttpxCaller(server.url, "A")
    ended = new_user(api, "ada@example.com")
    assert api.call("POST", "/api/auth/logout", headers=bearer(ended["access_token"])).status == 204
    live = log_in(api, "ada@example.com").body

    proxy.cut()

    assert_unavailable(log_in(api, "ada@example.com"), mentions="database")
    assert_unavailable(
        api.call("POST", "/api/auth/logout", headers=bearer(live["access_token"])),
        mentions="database",
    )
    refresh = {"refresh_token": live["refresh_token"]}
    assert_unavailable(
        api.call("POST", "/api/auth/refresh", json_body=refresh), mentions="database"
    )
    status, checks = readiness(api)
    assert (status, checks) == (503, {"database": "unavailable", "redis": "ok"})
    me = eventually(
        lambda: (
            (r := api.call("GET", "/api/auth/me", headers=bearer(live["access_token"]))).status
            == 503
            and r
        ),
        seconds=5,
        what="/me 503 once revocations are stale",
    )
    assert_unavailable(me, mentions="sessions")
    assert_unavailable(
        api.call("GET", "/api/auth/me", headers=bearer(ended["access_token"])), mentions="sessions"
    )

    proxy.restore()

    eventually(lambda: readiness(api)[0] == 200, seconds=10, what="readyz 200")
    eventually(
        lambda: api.call("GET", "/api/auth/me", headers=bearer(live["access_token"])).status == 200,
        seconds=5,
        what="/me 200",
    )
    refused = api.call("GET", "/api/auth/me", headers=bearer(ended["access_token"]))
    assert refused.error == (401, "invalid_token")
    # The refresh refused during the outage rotated nothing: its token still works, once.
    assert api.call("POST", "/api/auth/refresh", json_body=refresh).status == 200
    assert log_in(api, "ada@example.com", DEFAULT_PASSWORD).status == 200
    api.client.close()
