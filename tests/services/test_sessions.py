"""A user's sessions as a use case: logout, logout-all, ending one, changing the password."""

from __future__ import annotations

import pytest

from keyturn import errors
from keyturn.services.container import Services
from keyturn.services.issuing import IssuedTokens
from tests.support.api import DEFAULT_PASSWORD

EMAIL = "ada@example.com"
NEW_PASSWORD = "a brand new passphrase for ada"


def two_sessions(services: Services) -> tuple[IssuedTokens, IssuedTokens]:
    services.accounts.register(email=EMAIL, password=DEFAULT_PASSWORD)
    return (
        services.login.login(identifier=EMAIL, password=DEFAULT_PASSWORD),
        services.login.login(identifier=EMAIL, password=DEFAULT_PASSWORD),
    )


def test_logout_ends_only_its_own_session(services: Services) -> None:
    this, other = two_sessions(services)

    services.sessions.logout(claims=this.claims)

    with pytest.raises(errors.InvalidTokenError):
        services.access.authenticate(this.access_token)
    assert services.access.authenticate(other.access_token).session_id == other.claims.session_id


def test_logout_all_ends_every_session(services: Services) -> None:
    this, other = two_sessions(services)

    services.sessions.logout_all(this.user.id)

    for issued in (this, other):
        with pytest.raises(errors.InvalidTokenError):
            services.access.authenticate(issued.access_token)
    assert services.sessions.list_sessions(this.user.id) == []


def test_nobody_ends_a_session_of_someone_else(services: Services) -> None:
    this, _other = two_sessions(services)
    services.accounts.register(email="eve@example.com", password=DEFAULT_PASSWORD)
    eve = services.login.login(identifier="eve@example.com", password=DEFAULT_PASSWORD)

    with pytest.raises(errors.SessionNotFoundError):
        services.sessions.end_session(eve.user.id, this.claims.session_id)


def test_a_new_password_ends_the_other_sessions_and_keeps_this_one(services: Services) -> None:
    this, other = two_sessions(services)

    services.sessions.change_password(
        this.claims, current_password=DEFAULT_PASSWORD, new_password=NEW_PASSWORD
    )

    assert services.access.authenticate(this.access_token).session_id == this.claims.session_id
    with pytest.raises(errors.InvalidTokenError):
        services.access.authenticate(other.access_token)
    with pytest.raises(errors.InvalidCredentialsError):
        services.login.login(identifier=EMAIL, password=DEFAULT_PASSWORD)
    assert services.login.login(identifier=EMAIL, password=NEW_PASSWORD).user.email == EMAIL


def test_revoking_an_access_token_leaves_its_session(services: Services) -> None:
    """RFC 7009 on an access token revokes its `jti` alone."""
    this, _other = two_sessions(services)

    services.sessions.revoke(this.access_token)

    with pytest.raises(errors.InvalidTokenError):
        services.access.authenticate(this.access_token)
    assert [s.id for s in services.sessions.list_sessions(this.user.id)].count(
        this.claims.session_id
    ) == 1
