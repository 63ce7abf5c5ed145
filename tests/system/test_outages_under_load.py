"""Outages while a mixed load runs on two instances: Redis killed and restarted, then the
database cut off and restored. What cannot be served gets 503 `service_unavailable` with a
sentence, /readyz names the dependency that is down, service comes back without restarting
Keyturn, and not one revoked token (sessions logged out before or during the outages) is
accepted by any instance meanwhile."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support.api import bearer
from tests.support.instances import (
    HttpxCaller,
    RedisServer,
    Reply,
    TcpProxy,
    log_in,
    new_user,
)
from tests.support.load import MixedLoad, Revoked
from tests.support.processes import ServerFactory

pytestmark = [pytest.mark.system, pytest.mark.serial, pytest.mark.postgres, pytest.mark.redis]

USERS = 4
PHASE_SECONDS = 2.0


def eventually(check: Callable[[], Any], *, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while not (result := check()):
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.1)
    return result


def readiness(url: str) -> tuple[int, dict[str, Any]]:
    reply = httpx.get(f"{url}/readyz", timeout=10)
    return reply.status_code, reply.json()


def assert_unavailable(reply: Reply, *, mentions: str) -> None:
    assert reply.error == (503, "service_unavailable"), reply.body
    assert mentions in reply.body["message"].lower()
    assert reply.headers.get("retry-after")


def served(load: MixedLoad, action: str, status: int) -> int:
    return sum(n for (a, s, _e), n in load.outcomes.items() if a == action and s == status)


def test_outages_under_a_mixed_load_fail_closed_and_heal(
    make_server: ServerFactory,
    database_proxy: tuple[TcpProxy, str],
    own_redis: RedisServer,
) -> None:
    proxy, database_url = database_proxy
    env = {
        "KEYTURN_ISSUER": "http://auth.keyturn.test",
        "KEYTURN_DATABASE_URL": database_url,
        "KEYTURN_REDIS_URL": own_redis.url,
        "KEYTURN_REVOCATION_POLL_SECONDS": "0.2",
        "KEYTURN_REVOCATION_MAX_STALENESS_SECONDS": "1.5",
        "KEYTURN_REFRESH_MAX_PER_IP": "1000000",
    }
    instances = [make_server(**env).url, make_server(**env).url]
    first = HttpxCaller(instances[0], "A")
    emails = [f"load{n}@example.com" for n in range(USERS)]
    load = MixedLoad(instances, emails)
    for email in emails:
        ended = new_user(first, email)
        body = {"refresh_token": ended["refresh_token"]}
        assert first.call("POST", "/api/auth/logout", json_body=body).status == 204
        load.revoked.append(
            Revoked(ended["access_token"], ended["refresh_token"], instances[0], time.monotonic())
        )
    probe = log_in(first, emails[0]).body
    first.close()
    load.start()
    try:
        time.sleep(PHASE_SECONDS)
        revoked_before_outages = len(load.revoked)

        load.phase = "redis down"
        own_redis.kill()
        for url in instances:
            _status, body = eventually(
                lambda u=url: (r := readiness(u))[0] == 503 and r, seconds=5, what="readyz 503"
            )
            assert body["checks"] == {"database": "ok", "redis": "unavailable"}
            assert "redis" in body["message"].lower()
        logouts = served(load, "logout", 204)
        time.sleep(PHASE_SECONDS)
        assert served(load, "logout", 204) > logouts, "logouts stop while Redis is away"
        load.phase = "redis back"
        own_redis.start()
        for url in instances:
            eventually(lambda u=url: readiness(u)[0] == 200, seconds=10, what="readyz 200")

        load.phase = "database down"
        proxy.cut()
        for url in instances:
            _status, body = eventually(
                lambda u=url: (r := readiness(u))[0] == 503 and r, seconds=5, what="readyz 503"
            )
            assert body["checks"] == {"database": "unavailable", "redis": "ok"}
            assert "database" in body["message"].lower()
        # One session outside the load says each refusal out loud.
        second = HttpxCaller(instances[1], "B")
        assert_unavailable(log_in(second, emails[0]), mentions="database")
        held = {"refresh_token": probe["refresh_token"]}
        assert_unavailable(
            second.call("POST", "/api/auth/refresh", json_body=held), mentions="database"
        )
        assert_unavailable(
            second.call("POST", "/api/auth/logout", headers=bearer(probe["access_token"])),
            mentions="database",
        )
        time.sleep(PHASE_SECONDS)
        me = second.call("GET", "/api/auth/me", headers=bearer(probe["access_token"]))
        assert_unavailable(me, mentions="sessions")
        refused = {
            action: served(load, action, 503) for action in ("login", "refresh", "logout", "me")
        }
        load.phase = "database back"
        proxy.restore()
        for url in instances:
            eventually(lambda u=url: readiness(u)[0] == 200, seconds=10, what="readyz 200")
        healed = {
            action: served(load, action, 200 if action != "logout" else 204)
            for action in ("login", "refresh", "logout", "me")
        }
        eventually(
            lambda: all(
                served(load, action, 200 if action != "logout" else 204) > healed[action]
                for action in healed
            ),
            seconds=10,
            what="every action served again",
        )
    finally:
        load.stop()
    with_clients = {url: httpx.Client(base_url=url, timeout=10) for url in instances}
    load.sweep_revoked(with_clients)
    for client in with_clients.values():
        client.close()

    assert load.unexpected == [], (load.unexpected[:8], sorted(load.by_phase.items()))
    assert sum(refused.values()) > 0
    assert second.call("POST", "/api/auth/refresh", json_body=held).status == 200
    second.close()
    assert revoked_before_outages > 0 and len(load.revoked) > revoked_before_outages
    assert load.accepted_revoked == [], load.accepted_revoked[:5]
    assert load.revoked_checks > 100
    print(
        f"\nrevoked sessions: {len(load.revoked)}, checks of revoked tokens:"
        f" {load.revoked_checks}, accepted: {len(load.accepted_revoked)};"
        f" outcomes: {sorted(load.by_phase.items())}"
    )
