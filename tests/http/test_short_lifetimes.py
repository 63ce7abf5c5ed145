"""Development takes any positive refresh and session lifetime, so expiry can be watched."""

from __future__ import annotations

import pytest

from keyturn.clock import FrozenClock
from keyturn.config import Settings
from keyturn.core.sealing import new_sealing_key
from tests.support.api import error_of, login, refresh
from tests.support.environment import ApiFactory


def test_development_reads_five_second_lifetimes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KEYTURN_REFRESH_TTL_SECONDS", "5")
    monkeypatch.setenv("KEYTURN_SESSION_TTL_SECONDS", "5")
    monkeypatch.setenv("KEYTURN_SESSION_MAX_AGE_SECONDS", "5")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.refresh_ttl_seconds, settings.session_ttl_seconds) == (5, 5)
    assert settings.configuration_problems() == settings.production_problems() == []


@pytest.mark.parametrize("remember_me", [True, False])
async def test_a_five_second_refresh_token_expires_after_five_seconds(
    make_api: ApiFactory, clock: FrozenClock, remember_me: bool
) -> None:
    """KEYTURN_REFRESH_TTL_SECONDS (remember_me) or KEYTURN_SESSION_TTL_SECONDS (not): the
    token refreshes within the lifetime, and is refused as expired after it."""
    api = await make_api(refresh_ttl_seconds=5, session_ttl_seconds=5)
    session = await login(api, remember_me=remember_me)

    clock.advance(seconds=3)
    rotated = await refresh(api, session.refresh_token)
    assert rotated.status_code == 200, rotated.text
    clock.advance(seconds=6)

    late = await refresh(api, rotated.json()["refresh_token"])

    assert error_of(late) == (401, "refresh_token_expired")


def test_production_keeps_a_floor_in_one_sentence() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        env="production",
        refresh_ttl_seconds=5,
        session_ttl_seconds=30,
        secrets_key=new_sealing_key(),
        smtp_url="smtps://keyturn:secret@smtp.example.com:465",
        mail_from="Keyturn <no-reply@example.com>",
    )
    problems = settings.production_problems()
    assert len(problems) == 1
    assert "KEYTURN_REFRESH_TTL_SECONDS, KEYTURN_SESSION_TTL_SECONDS" in problems[0]
    assert "at least 60 seconds in production" in problems[0]
