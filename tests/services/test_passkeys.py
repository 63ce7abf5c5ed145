"""Passkeys as use cases: the check a second login step makes for a given account, and the
amr a passkey login carries. No HTTP; a software authenticator plays the browser."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from keyturn import errors
from keyturn.clock import FrozenClock
from keyturn.core.passkeys import passkey_amr
from keyturn.services.container import Services
from keyturn.storage import passkeys as passkey_store
from keyturn.storage.models import passkey_challenges
from tests.support.api import DEFAULT_PASSWORD
from tests.support.authenticator import SoftwareAuthenticator
from tests.support.environment import TEST_ISSUER

ORIGIN = TEST_ISSUER


def user_with_passkey(services: Services, email: str, authenticator: SoftwareAuthenticator) -> str:
    user = services.accounts.register(email=email, password=DEFAULT_PASSWORD)
    options = json.loads(services.passkeys.registration_options(user.id))
    services.passkeys.register(user.id, authenticator.create(options))
    return user.id


def test_a_second_factor_assertion_is_checked_for_the_given_account(services: Services) -> None:
    """`options_for_user` lists the account's own passkeys; `verify_assertion_for_user`
    returns the passkey that answered, and refuses another account's."""
    ada_key = SoftwareAuthenticator(origin=ORIGIN)
    bob_key = SoftwareAuthenticator(origin=ORIGIN)
    ada = user_with_passkey(services, "ada@example.com", ada_key)
    bob = user_with_passkey(services, "bob@example.com", bob_key)

    options = json.loads(services.passkey_login.options_for_user(ada))
    passkey = services.passkey_login.verify_assertion_for_user(ada, ada_key.get(options))
    with pytest.raises(errors.InvalidCredentialError):
        services.passkey_login.verify_assertion_for_user(
            ada, bob_key.get(json.loads(services.passkey_login.options_for_user(ada)))
        )

    assert [item["id"] for item in options["allowCredentials"]] == [
        p.credential_id for p in services.passkeys.list_passkeys(ada)
    ]
    assert (passkey.user_id, passkey.id) == (ada, services.passkeys.list_passkeys(ada)[0].id)
    assert services.passkeys.list_passkeys(bob)[0].last_used_at is None


def test_challenges_do_not_cross_between_ceremonies(services: Services) -> None:
    """A second-factor challenge serves no password-less login and no other account; a
    password-less one no second factor; a registration challenge no assertion at all."""
    ada_key = SoftwareAuthenticator(origin=ORIGIN, counts=False)
    ada = user_with_passkey(services, "ada@example.com", ada_key)
    bob = user_with_passkey(services, "bob@example.com", SoftwareAuthenticator(origin=ORIGIN))
    login = services.passkey_login

    attempts = [
        lambda: login.login(ada_key.get(json.loads(login.options_for_user(ada)))),
        lambda: login.verify_assertion_for_user(
            ada, ada_key.get(json.loads(login.options_for_user(bob)))
        ),
        lambda: login.verify_assertion_for_user(
            ada, ada_key.get(json.loads(login.login_options()))
        ),
        lambda: login.verify_assertion_for_user(
            ada,
            ada_key.get(
                {}, challenge=json.loads(services.passkeys.registration_options(ada))["challenge"]
            ),
        ),
    ]
    for attempt in attempts:
        with pytest.raises(errors.InvalidCredentialError):
            attempt()
    assert login.verify_assertion_for_user(
        ada, ada_key.get(json.loads(login.options_for_user(ada)))
    )


def test_the_amr_of_a_passkey_says_whether_it_can_leave_its_device(services: Services) -> None:
    """`hwk` for a key bound to its authenticator, `swk` for a synced one (RFC 8176)."""
    bound = user_with_passkey(services, "ada@example.com", SoftwareAuthenticator(origin=ORIGIN))
    synced = user_with_passkey(
        services, "bob@example.com", SoftwareAuthenticator(origin=ORIGIN, synced=True)
    )

    assert passkey_amr(services.passkeys.list_passkeys(bound)[0]) == ("hwk",)
    assert passkey_amr(services.passkeys.list_passkeys(synced)[0]) == ("swk",)


def test_the_factor_side_can_ask_and_remove_passkeys(services: Services) -> None:
    """`has_passkeys` and `delete_passkeys`, for the second-factor step and the admin."""
    ada = user_with_passkey(services, "ada@example.com", SoftwareAuthenticator(origin=ORIGIN))
    with services.database.transaction() as connection:
        assert passkey_store.has_passkeys(connection, ada)
        assert passkey_store.delete_passkeys(connection, ada) == 1
        assert not passkey_store.has_passkeys(connection, ada)


def test_the_purge_deletes_expired_challenges(services: Services, clock: FrozenClock) -> None:
    """Unused challenges (anyone may ask for login options) do not pile up: once expired, the
    periodic purge deletes them; live ones stay."""
    services.passkey_login.login_options()
    clock.advance(seconds=200)
    services.passkey_login.login_options()
    clock.advance(seconds=101)

    services.upkeep.purge()

    with services.database.snapshot() as connection:
        left = connection.execute(select(func.count()).select_from(passkey_challenges)).scalar()
    assert left == 1
