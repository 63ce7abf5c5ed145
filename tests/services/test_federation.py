"""Accounts a provider created have no password: a password login of one is refused after the
same work as a wrong password, and its last way in cannot be unlinked."""

from __future__ import annotations

import pytest

from keyturn import errors, wire
from keyturn.core.context import RequestContext
from keyturn.services.container import Services
from keyturn.storage import identities as identity_store
from keyturn.storage import users as user_store
from tests.support.api import DEFAULT_PASSWORD


def password_less_user(services: Services, email: str = "fed@example.com") -> str:
    with services.database.transaction() as connection:
        user = user_store.insert_user(
            connection,
            user_id="f" * 32,
            email=email,
            username=None,
            password_hash=None,
            roles=(wire.ROLE_USER,),
            now=services.clock.now(),
        )
        identity_store.insert_identity(
            connection,
            identity_store.Identity(
                id="i" * 32,
                user_id=user.id,
                provider="corp",
                subject="s-1",
                email=email,
                created_at=services.clock.now(),
                last_used_at=services.clock.now(),
            ),
        )
    return user.id


def test_a_password_less_account_refuses_every_password_after_a_full_check(
    services: Services,
) -> None:
    """Each refusal costs one password check, as for a wrong password or an unknown account,
    so the answer's timing does not tell these accounts apart."""
    services.accounts.register(email="ada@example.com", password=DEFAULT_PASSWORD)
    password_less_user(services)
    hashing = services.password_hashing
    work: dict[str, int] = {}

    for name, identifier in (
        ("password-less", "fed@example.com"),
        ("wrong password", "ada@example.com"),
        ("unknown", "nobody@example.com"),
        ("password-less again", "fed@example.com"),
    ):
        before = hashing.hashes_done
        with pytest.raises(errors.InvalidCredentialsError):
            services.login.login(
                identifier=identifier,
                password="not the password",
                context=RequestContext(ip=None, user_agent=None),
            )
        work[name] = hashing.hashes_done - before

    assert set(work.values()) == {1}, work


def test_the_only_way_into_a_password_less_account_stays_linked(services: Services) -> None:
    user_id = password_less_user(services)
    context = RequestContext(ip=None, user_agent=None)

    with pytest.raises(errors.LastSignInMethodError):
        services.identities.unlink(user_id, "i" * 32, context=context)
    with pytest.raises(errors.IdentityNotFoundError):
        services.identities.unlink("someone-else", "i" * 32, context=context)

    assert [i.id for i in services.identities.identities(user_id)] == ["i" * 32]
