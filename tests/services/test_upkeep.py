"""Upkeep purges what can no longer matter, so the tables stay bounded."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import event, func, select

from keyturn.clock import FrozenClock
from keyturn.services import upkeep
from keyturn.services.container import build_services
from keyturn.storage import refresh_tokens as refresh_token_store
from keyturn.storage import sessions as session_store
from keyturn.storage.db import Database
from keyturn.storage.migrations import upgrade_database
from keyturn.storage.models import refresh_tokens, revocations, sessions
from tests.support.api import DEFAULT_PASSWORD


def count(services, table) -> int:
    with services.database.snapshot() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


async def test_purge_removes_expired_tokens_and_long_over_sessions(
    make_settings, clock: FrozenClock
) -> None:
    services = build_services(
        make_settings(refresh_ttl_seconds=3600, session_ttl_seconds=3600, access_ttl_seconds=60),
        clock=clock,
    )
    try:
        services.keyring.ensure_signing_key()
        services.accounts.register(email="ada@example.com", password=DEFAULT_PASSWORD)
        live = services.login.login(identifier="ada@example.com", password=DEFAULT_PASSWORD)
        ended = services.login.login(identifier="ada@example.com", password=DEFAULT_PASSWORD)
        token = live.refresh_token
        for _ in range(3):
            clock.advance(seconds=60)
            token = (await services.rotation.rotate_refresh_token(token)).refresh_token
        services.sessions.logout(claims=ended.claims)
        assert (count(services, sessions), count(services, refresh_tokens)) == (2, 5)

        clock.advance(
            seconds=600
        )  # the ended session is over for longer than an access token lives
        services.upkeep.purge()
        assert count(services, sessions) == 1
        assert count(services, revocations) == 0
        # Rotated tokens stay while they could still be replayed (to detect theft)...
        assert count(services, refresh_tokens) == 4

        clock.advance(seconds=3600)  # ...and go once expired, with the idle session.
        services.upkeep.purge()
        assert (count(services, sessions), count(services, refresh_tokens)) == (0, 0)
    finally:
        services.database.dispose()


def test_purge_clears_a_backlog_larger_than_one_batch(
    make_settings, clock: FrozenClock, monkeypatch
) -> None:
    """A backlog goes in several short transactions, and all of it goes."""
    monkeypatch.setattr(upkeep, "PURGE_BATCH", 3)
    services = build_services(make_settings(access_ttl_seconds=60), clock=clock)
    try:
        services.keyring.ensure_signing_key()
        services.accounts.register(email="ada@example.com", password=DEFAULT_PASSWORD)
        logins = [
            services.login.login(identifier="ada@example.com", password=DEFAULT_PASSWORD)
            for _ in range(8)
        ]
        for issued in logins[:7]:
            services.sessions.logout(claims=issued.claims)
        clock.advance(seconds=600)

        services.upkeep.purge()

        assert (count(services, sessions), count(services, refresh_tokens)) == (1, 1)
    finally:
        services.database.dispose()


def test_purge_finds_sessions_through_indexes(tmp_path) -> None:
    """Neither purge statement reads the whole sessions table (SQLite's own plan says so)."""
    database = Database(f"sqlite:///{tmp_path}/plan.db")
    try:
        upgrade_database(database)
        statements: list[str] = []
        with database.transaction() as connection:
            event.listen(
                connection, "before_cursor_execute", lambda *args: statements.append(args[2])
            )
            session_store.purge_sessions(
                connection, over_before=datetime(2030, 1, 1, tzinfo=UTC), limit=10
            )
            refresh_token_store.purge_expired_refresh_tokens(
                connection, now=datetime(2030, 1, 1, tzinfo=UTC), limit=10
            )
            raw = connection.connection.driver_connection
            plans = [
                " | ".join(row[3] for row in raw.execute(f"EXPLAIN QUERY PLAN {sql}", params))
                for sql, params in zip(statements, _params(statements), strict=True)
            ]
        assert len(plans) == 3
        for plan in plans:
            assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, plan
            assert "SCAN sessions" not in plan and "SCAN refresh_tokens" not in plan, plan
    finally:
        database.dispose()


def _params(statements: list[str]) -> list[tuple[object, ...]]:
    return [("2030-01-01T00:00:00+00:00",) + (10,) * (sql.count("?") - 1) for sql in statements]
