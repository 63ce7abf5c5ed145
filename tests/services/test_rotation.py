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
