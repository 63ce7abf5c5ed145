"""Refresh-token rotation as a use case: successors, the grace window, theft."""

from __future__ import annotations

import pytest

from keyturn import errors
from keyturn.clock import FrozenClock
from keyturn.services.container import Services
from keyturn.services.issuing import IssuedTokens
from tests.support.api import DEFAULT_PASSWORD


def log_in(services: Services) -> IssuedTokens:
    services.accounts.register(email="ada@example.com", password=DEFAULT_PASSWORD)
    return services.login.login(identifier="ada@example.com", password=DEFAULT_PASSWORD)


async def test_a_rotation_hands_out_a_successor_in_the_same_session(services: Services) -> None:
    first = log_in(services)

    second = await services.rotation.rotate_refresh_token(first.refresh_token)

    assert second.refresh_token != first.refresh_token
    assert second.claims.session_id == first.claims.session_id
    assert services.access.authenticate(second.access_token).session_id == first.claims.session_id


async def test_within_the_grace_window_the_same_successor_comes_back(
    make_services, clock: FrozenClock
) -> None:
    services = make_services(refresh_reuse_grace_seconds=10)
    first = log_in(services)
    second = await services.rotation.rotate_refresh_token(first.refresh_token)
    clock.advance(seconds=5)

    again = await services.rotation.rotate_refresh_token(first.refresh_token)

    assert again.refresh_token == second.refresh_token


async def test_reuse_after_the_grace_window_ends_the_session(
    make_services, clock: FrozenClock
) -> None:
    """A rotated token presented again is theft: the whole session ends, its access tokens
    and its latest refresh token too."""
    services = make_services(refresh_reuse_grace_seconds=10)
    first = log_in(services)
    second = await services.rotation.rotate_refresh_token(first.refresh_token)
    clock.advance(seconds=11)

    with pytest.raises(errors.RefreshTokenReusedError):
        await services.rotation.rotate_refresh_token(first.refresh_token)

    with pytest.raises(errors.InvalidTokenError):
        services.access.authenticate(second.access_token)
    with pytest.raises(errors.InvalidRefreshTokenError):
        await services.rotation.rotate_refresh_token(second.refresh_token)


async def test_a_token_not_shaped_like_ours_is_refused_before_any_transaction(
    services: Services,
) -> None:
    groups_before = services.rotation._refresh_group.groups_written

    with pytest.raises(errors.InvalidRefreshTokenError):
        await services.rotation.rotate_refresh_token("not-a-refresh-token")

    assert services.rotation._refresh_group.groups_written == groups_before


async def test_after_a_restart_a_lost_answer_is_sent_again(
    make_services, clock: FrozenClock
) -> None:
    """A rotation committed, the process died before answering, another started: the client's
    retry with the parent, past the grace window, gets the very successor it never received."""
    services = make_services(refresh_reuse_grace_seconds=10, refresh_recovery_seconds=60)
    first = log_in(services)
    lost = await services.rotation.rotate_refresh_token(first.refresh_token)
    clock.advance(seconds=3)
    restarted = make_services(refresh_reuse_grace_seconds=10, refresh_recovery_seconds=60)
    restarted.lost_answers.record_start(restarted.database)
    clock.advance(seconds=12)

    retry = await restarted.rotation.rotate_refresh_token(first.refresh_token)

    assert retry.refresh_token == lost.refresh_token
    assert retry.claims.session_id == first.claims.session_id
    assert (await restarted.rotation.rotate_refresh_token(retry.refresh_token)).refresh_token


async def test_after_a_restart_the_parent_of_a_used_successor_is_still_theft(
    make_services, clock: FrozenClock
) -> None:
    """Once the successor has been presented, its parent is never good again: the session ends."""
    services = make_services(refresh_reuse_grace_seconds=10)
    first = log_in(services)
    second = await services.rotation.rotate_refresh_token(first.refresh_token)
    third = await services.rotation.rotate_refresh_token(second.refresh_token)
    clock.advance(seconds=3)
    services.lost_answers.record_start(services.database)
    clock.advance(seconds=12)

    with pytest.raises(errors.RefreshTokenReusedError):
        await services.rotation.rotate_refresh_token(first.refresh_token)

    with pytest.raises(errors.InvalidRefreshTokenError):
        await services.rotation.rotate_refresh_token(third.refresh_token)


@pytest.mark.parametrize(
    ("started_after", "retried_after", "recovery"),
    [
        (None, 15, 60),  # no restart: nothing was lost as far as Keyturn can know
        (-1, 15, 60),  # the start came before the rotation
        (3, 70, 60),  # past the recovery window after the start
        (3, 15, 0),  # recovery turned off
    ],
)
async def test_a_reuse_without_a_recent_restart_ends_the_session(
    make_services,
    clock: FrozenClock,
    started_after: int | None,
    retried_after: int,
    recovery: int,
) -> None:
    services = make_services(refresh_reuse_grace_seconds=10, refresh_recovery_seconds=recovery)
    if started_after is not None and started_after < 0:
        services.lost_answers.record_start(services.database)
        clock.advance(seconds=1)
    first = log_in(services)
    second = await services.rotation.rotate_refresh_token(first.refresh_token)
    if started_after is not None and started_after > 0:
        clock.advance(seconds=started_after)
        services.lost_answers.record_start(services.database)
        retried_after -= started_after
    clock.advance(seconds=retried_after)

    with pytest.raises(errors.RefreshTokenReusedError):
        await services.rotation.rotate_refresh_token(first.refresh_token)

    with pytest.raises(errors.InvalidRefreshTokenError):
        await services.rotation.rotate_refresh_token(second.refresh_token)


@pytest.mark.parametrize(
    ("binding", "opened", "refreshed", "kept"),
    [
        ("user_agent", ("203.0.113.5", "Phone/1"), ("198.51.100.9", "Phone/1"), True),
        ("user_agent", ("203.0.113.5", "Phone/1"), ("203.0.113.5", "Curl/8"), False),
        ("network", ("203.0.113.5", "Phone/1"), ("203.0.113.200", "Curl/8"), True),
        ("network", ("203.0.113.5", "Phone/1"), ("203.0.114.5", "Phone/1"), False),
        ("network", ("2001:db8:1:2::1", "P"), ("2001:db8:1:ffff::9", "P"), True),
        ("network", ("2001:db8:1:2::1", "P"), ("2001:db8:2:2::1", "P"), False),
        ("network", ("203.0.113.5", "P"), ("not an address", "P"), False),
        ("off", ("203.0.113.5", "Phone/1"), ("2001:db8::1", "Curl/8"), True),
    ],
)
async def test_a_bound_refresh_from_elsewhere_ends_the_session(
    make_services,
    binding: str,
    opened: tuple[str, str],
    refreshed: tuple[str, str],
    kept: bool,
) -> None:
    """KEYTURN_REFRESH_BINDING: a refresh from another User-Agent or network is refused with
    invalid_refresh_token and ends the session, audited as refresh_binding_mismatch."""
    from keyturn.core.context import RequestContext

    services = make_services(refresh_binding=binding)
    services.accounts.register(email="ada@example.com", password=DEFAULT_PASSWORD)
    first = services.login.login(
        identifier="ada@example.com",
        password=DEFAULT_PASSWORD,
        context=RequestContext(ip=opened[0], user_agent=opened[1]),
    )
    elsewhere = RequestContext(ip=refreshed[0], user_agent=refreshed[1])

    if kept:
        renewed = await services.rotation.rotate_refresh_token(
            first.refresh_token, context=elsewhere
        )
        assert services.access.authenticate(renewed.access_token)
        return
    with pytest.raises(errors.InvalidRefreshTokenError) as refused:
        await services.rotation.rotate_refresh_token(first.refresh_token, context=elsewhere)

    assert "another device or network" in str(refused.value)
    with pytest.raises(errors.InvalidTokenError):
        services.access.authenticate(first.access_token)
    events, _total = services.admin.list_audit_events(limit=10, offset=0)
    assert "refresh_binding_mismatch" in [event.event for event in events]
