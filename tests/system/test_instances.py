"""Several Keyturn processes agree: two instances sharing PostgreSQL and Redis, and one
`keyturn serve --workers 2` on SQLite without Redis.

Each scenario runs on caller A and caller B, which are different processes: two servers, or
two connections the kernel handed to different workers (checked through /proc, not taken on
trust). Login failures come through a trusted proxy (X-Forwarded-For) so each scenario's
address counter is its own.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.support.api import DEFAULT_PASSWORD, bearer
from tests.support.environment import RedisDatabase
from tests.support.instances import (
    Caller,
    HttpxCaller,
    Reply,
    connections_to_each_worker,
    log_in,
    new_user,
    refused_within,
    session_id_of,
)
from tests.support.processes import ServerFactory

pytestmark = pytest.mark.system

WRONG_PASSWORD = "not the right passphrase"
COMMON = {
    "KEYTURN_LOGIN_MAX_FAILURES": "3",
    "KEYTURN_LOGIN_MAX_FAILURES_PER_IP": "3",
    "KEYTURN_TRUSTED_PROXIES": "127.0.0.1",
    "KEYTURN_REFRESH_REUSE_GRACE_SECONDS": "0",
    "KEYTURN_ISSUER": "http://auth.keyturn.test",  # one deployment, one issuer
}


def check_login_on_a_works_on_b(a: Caller, b: Caller) -> None:
    tokens = new_user(a, "ada@example.com")
    me = b.call("GET", "/api/auth/me", headers=bearer(tokens["access_token"]))
    assert me.status == 200 and me.body["user"]["email"] == "ada@example.com"


def check_logout_on_b_is_refused_on_a(a: Caller, b: Caller) -> tuple[str, float]:
    tokens = log_in(a, "ada@example.com").body
    assert a.call("GET", "/api/auth/me", headers=bearer(tokens["access_token"])).status == 200
    out = b.call("POST", "/api/auth/logout", headers=bearer(tokens["access_token"]))
    assert out.status == 204
    elapsed = refused_within(a, tokens["access_token"], seconds=1.0)
    return session_id_of(tokens["access_token"]), elapsed


def check_reuse_is_detected_across_instances(a: Caller, b: Caller) -> None:
    tokens = new_user(a, "bob@example.com")
    rotated = a.call(
        "POST", "/api/auth/refresh", json_body={"refresh_token": tokens["refresh_token"]}
    )
    assert rotated.status == 200

    replay = b.call(
        "POST", "/api/auth/refresh", json_body={"refresh_token": tokens["refresh_token"]}
    )

    assert replay.error == (401, "refresh_token_reused")
    successor = a.call(
        "POST", "/api/auth/refresh", json_body={"refresh_token": rotated.body["refresh_token"]}
    )
    assert successor.error == (401, "invalid_refresh_token")
    refused_within(a, rotated.body["access_token"], seconds=1.0)


def check_failures_add_up_across_instances(a: Caller, b: Caller) -> None:
    new_user(a, "cyd@example.com")
    # Per account: three failures from three addresses, split over A and B.
    for caller, ip in ((a, "198.51.100.1"), (b, "198.51.100.2"), (a, "198.51.100.3")):
        assert log_in(caller, "cyd@example.com", WRONG_PASSWORD, ip).error == (
            401,
            "invalid_credentials",
        )
    for caller, ip in ((a, "198.51.100.4"), (b, "198.51.100.5")):
        locked = log_in(caller, "cyd@example.com", DEFAULT_PASSWORD, ip)
        assert locked.error == (429, "too_many_requests"), (caller.name, locked.body)
        assert int(locked.headers["retry-after"]) >= 1
    # Per address: three failures on three accounts from one address, split over A and B.
    new_user(a, "dee@example.com")
    for caller, email in ((b, "x@example.com"), (a, "y@example.com"), (b, "z@example.com")):
        assert log_in(caller, email, WRONG_PASSWORD, "198.51.100.9").status == 401
    for caller in (a, b):
        locked = log_in(caller, "dee@example.com", DEFAULT_PASSWORD, "198.51.100.9")
        assert locked.error == (429, "too_many_requests"), (caller.name, locked.body)
    assert log_in(b, "dee@example.com", DEFAULT_PASSWORD, "198.51.100.10").status == 200


@pytest.mark.postgres
@pytest.mark.redis
def test_two_instances_share_postgresql_and_redis(
    make_server: ServerFactory, postgres_url: str, redis_database: RedisDatabase
) -> None:
    """Two servers on one PostgreSQL database and one Redis: a login works on both, logout
    and reuse on one are enforced by the other, and login failures add up. The database is
    polled only every 5 s here, so refusal within 1 s is Redis pub/sub's doing; the revoked
    session's key is in Redis for other services, and the counters live in Redis."""
    env = {
        **COMMON,
        "KEYTURN_DATABASE_URL": postgres_url,
        "KEYTURN_REDIS_URL": redis_database.url,
        "KEYTURN_REVOCATION_POLL_SECONDS": "5",
        "KEYTURN_REVOCATION_MAX_STALENESS_SECONDS": "30",
    }
    server_a = make_server(**env)
    server_b = make_server(**env)
    a, b = HttpxCaller(server_a.url, "A"), HttpxCaller(server_b.url, "B")
    try:
        for caller in (a, b):
            ready = caller.call("GET", "/readyz")
            assert ready.status == 200 and ready.body["checks"] == {"database": "ok", "redis": "ok"}
        time.sleep(0.5)  # both subscribed to the revocation channel

        check_login_on_a_works_on_b(a, b)
        session_id, elapsed = check_logout_on_b_is_refused_on_a(a, b)
        check_reuse_is_detected_across_instances(a, b)
        check_failures_add_up_across_instances(a, b)
    finally:
        a.close()
        b.close()

    assert elapsed < 1.0
    key = "keyturn:revoked:sid:" + session_id
    assert redis_database.client.get(key) == b"1"
    assert 0 < redis_database.client.pttl(key) <= (900 + 60) * 1000
    counters = [k for k in redis_database.keyturn_keys() if k.startswith("keyturn:ratelimit:")]
    # A known account is counted by its user id, an unknown identifier as typed.
    accounts = [k.removeprefix("keyturn:ratelimit:login:account:") for k in counters]
    assert any(re.fullmatch(r"[0-9a-f]{32}", account) for account in accounts), counters
    assert "x@example.com" in accounts
    assert all(redis_database.client.pttl(k) > 0 for k in counters)


def wait_for(condition: Callable[[], bool], *, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what} after {seconds} s"
        time.sleep(0.02)


@pytest.mark.postgres
def test_a_revocation_that_commits_late_reaches_the_other_instance(
    make_server: ServerFactory, postgres_url: str
) -> None:
    """Two servers on one PostgreSQL database without Redis. A logout-all on A records its
    first revocation, then waits on a row lock held here on purpose while another logout
    commits and B reads it; once the lock goes and the logout-all commits, B refuses the
    first session's access token within a few polls: the feed skips no committed row, even
    one whose id is below a row B has already read."""
    env = {
        **COMMON,
        "KEYTURN_DATABASE_URL": postgres_url,
        "KEYTURN_REVOCATION_POLL_SECONDS": "0.2",
    }
    server_a = make_server(**env)
    server_b = make_server(**env)
    a, b = HttpxCaller(server_a.url, "A"), HttpxCaller(server_b.url, "B")
    a_again = HttpxCaller(server_a.url, "A")  # the blocked logout-all has a client of its own
    libpq_url = make_url(postgres_url).set(drivername="postgresql")
    blocker = psycopg.connect(libpq_url.render_as_string(hide_password=False))
    observer = psycopg.connect(libpq_url.render_as_string(hide_password=False), autocommit=True)
    try:
        ada = {
            session_id_of(tokens["access_token"]): tokens["access_token"]
            for tokens in (new_user(a, "ada@example.com"), log_in(a, "ada@example.com").body)
        }
        bob = new_user(a, "bob@example.com")
        user_id = a.call("GET", "/api/auth/me", headers=bearer(next(iter(ada.values()))))
        # The order logout-all ends ada's sessions in: lock the second, so the first one's
        # revocation row has its id while the transaction waits.
        first, second = [
            row[0]
            for row in observer.execute(
                "SELECT id FROM sessions WHERE user_id = %s AND ended_at IS NULL",
                (user_id.body["user"]["id"],),
            )
        ]
        allocated = "SELECT pg_sequence_last_value(pg_get_serial_sequence('revocations', 'id'))"
        before = observer.execute(allocated).fetchone()
        assert before is not None
        blocker.execute("SELECT 1 FROM sessions WHERE id = %s FOR UPDATE", (second,))

        replies: list[Reply] = []
        logout_all = threading.Thread(
            target=lambda: replies.append(
                a_again.call("POST", "/api/auth/logout-all", headers=bearer(ada[first]))
            )
        )
        logout_all.start()
        waiting = (
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        wait_for(
            lambda: observer.execute(waiting).fetchone() == (1,),
            seconds=10,
            what="the logout-all to wait on the lock",
        )
        assert observer.execute(allocated).fetchone() == ((before[0] or 0) + 1,)

        assert a.call("POST", "/api/auth/logout", headers=bearer(bob["access_token"])).status == 204
        refused_within(b, bob["access_token"], seconds=5.0)  # B has read that later row
        assert b.call("GET", "/api/auth/me", headers=bearer(ada[first])).status == 200

        blocker.rollback()  # the logout-all goes on and commits
        logout_all.join(timeout=10)
        assert [reply.status for reply in replies] == [204]
        elapsed = refused_within(b, ada[first], seconds=2.0)
        refused_within(b, ada[second], seconds=2.0)
    finally:
        blocker.close()
        observer.close()
        for caller in (a, b, a_again):
            caller.close()

    assert elapsed < 2.0


def test_two_workers_on_sqlite_without_redis_agree(make_server: ServerFactory) -> None:
    """`keyturn serve --workers 2` on SQLite with no Redis: the same scenarios, with A and B
    connections the kernel gave to different worker processes."""
    server = make_server(workers=2, **COMMON)
    assert server.process is not None
    a, b = connections_to_each_worker(server.port, group=server.process.pid, workers=2)
    assert a.pid != b.pid
    try:
        ready = a.call("GET", "/readyz")
        assert ready.status == 200 and ready.body["checks"] == {"database": "ok"}

        check_login_on_a_works_on_b(a, b)
        check_logout_on_b_is_refused_on_a(a, b)
        check_reuse_is_detected_across_instances(a, b)
        check_failures_add_up_across_instances(a, b)
        # Each connection was served by its own worker throughout (the same socket).
        assert (a.current_pid(), b.current_pid()) == (a.pid, b.pid)
    finally:
        a.close()
        b.close()
