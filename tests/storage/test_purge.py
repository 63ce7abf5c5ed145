"""Upkeep purges what can no longer matter, so the tables stay bounded."""

from __future__ import annotations

from sqlalchemy import func, select

from keyturn.clock import FrozenClock
from keyturn.services.container import build_services
from keyturn.storage.models import refresh_tokens, revocations, sessions
from tests.support import DEFAULT_PASSWORD


def count(services, table) -> int:
    with services.database.snapshot() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def test_purge_removes_expired_tokens_and_long_over_sessions(
    make_settings, clock: FrozenClock
) -> None:
    services = build_services(
        make_settings(refresh_ttl_seconds=3600, session_ttl_seconds=3600, access_ttl_seconds=60),
        clock=clock,
    )
    try:
        services.keyring.ensure_signing_key()
        services.accounts.register(email="ada@example.com", password=DEFAULT_PASSWORD)
        live = services.auth.login(identifier="ada@example.com", password=DEFAULT_PASSWORD)
        ended = services.auth.login(identifier="ada@example.com", password=DEFAULT_PASSWORD)
        token = live.refresh_token
        for _ in range(3):
            clock.advance(seconds=60)
            token = services.auth.refresh(token).refresh_token
        services.auth.logout(claims=ended.claims)
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
