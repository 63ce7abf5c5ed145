"""Logging in: the password check and its throttle, called as a use case."""

from __future__ import annotations

import pytest

from keyturn import errors
from keyturn.clock import FrozenClock
from keyturn.core.context import RequestContext
from keyturn.services.container import Services
from tests.support.api import DEFAULT_PASSWORD

EMAIL = "ada@example.com"


def test_a_login_opens_a_session_whose_token_passes_the_access_check(services: Services) -> None:
    """The issued access token names the new session, and the access check accepts it."""
    services.accounts.register(email=EMAIL, password=DEFAULT_PASSWORD)

    issued = services.login.login(identifier=EMAIL, password=DEFAULT_PASSWORD)

    claims = services.access.authenticate(issued.access_token)
    assert (claims.subject, claims.session_id) == (issued.user.id, issued.claims.session_id)
    assert [s.id for s in services.sessions.list_sessions(issued.user.id)] == [claims.session_id]


def test_an_unknown_account_and_a_wrong_password_read_the_same(services: Services) -> None:
    services.accounts.register(email=EMAIL, password=DEFAULT_PASSWORD)

    with pytest.raises(errors.InvalidCredentialsError) as unknown:
        services.login.login(identifier="nobody@example.com", password=DEFAULT_PASSWORD)
    with pytest.raises(errors.InvalidCredentialsError) as wrong:
        services.login.login(identifier=EMAIL, password="not the password at all")

    assert str(unknown.value) == str(wrong.value)


def test_the_account_locks_at_the_limit_even_for_the_right_password(
    make_services, clock: FrozenClock
) -> None:
    """Past KEYTURN_LOGIN_MAX_FAILURES failures the right password is refused too, until the
    window is over."""
    services = make_services(login_max_failures=3, login_window_seconds=60)
    services.accounts.register(email=EMAIL, password=DEFAULT_PASSWORD)
    for _ in range(3):
        with pytest.raises(errors.InvalidCredentialsError):
            services.login.login(identifier=EMAIL, password="not the password at all")

    with pytest.raises(errors.TooManyRequestsError) as locked:
        services.login.login(identifier=EMAIL, password=DEFAULT_PASSWORD)
    assert locked.value.retry_after_seconds is not None
    clock.advance(seconds=61)

    assert services.login.login(identifier=EMAIL, password=DEFAULT_PASSWORD).user.email == EMAIL


def test_an_address_counts_failures_only(make_services) -> None:
    """Successful logins from one address never lock it: an office logs in many people."""
    services = make_services(login_max_failures=2)
    office = RequestContext(ip="198.51.100.4")
    for number in range(4):
        email = f"user{number}@example.com"
        services.accounts.register(email=email, password=DEFAULT_PASSWORD)
        services.login.login(identifier=email, password=DEFAULT_PASSWORD, context=office)
