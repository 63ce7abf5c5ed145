"""The access check as a use case: what it accepts, and what it asks of the key ring."""

from __future__ import annotations

from datetime import timedelta

import pytest

from keyturn import errors
from keyturn.clock import FrozenClock
from keyturn.core.keys import generate_private_key_pem, load_signing_key
from keyturn.core.tokens import mint_access_token
from keyturn.services.container import Services
from tests.support.environment import TEST_ISSUER


def test_a_token_of_an_unknown_key_is_refused_and_asks_for_a_key_reload(
    services: Services, clock: FrozenClock
) -> None:
    """Another instance may have rotated keys: the check refuses the token and upkeep is asked
    to reload the ring (once)."""
    now = clock.now()
    foreign = load_signing_key(
        kid="kid-of-another-ring",
        algorithm="EdDSA",
        private_key_pem=generate_private_key_pem("EdDSA"),
        created_at=now,
    )
    token, _claims = mint_access_token(
        key=foreign,
        issuer=TEST_ISSUER,
        audience=services.settings.audience,
        subject="u" * 32,
        session_id="s" * 28,
        roles=("user",),
        client_id="keyturn",
        now=now,
        lifetime=timedelta(minutes=5),
    )
    assert services.keyring.take_reload_request() is False

    with pytest.raises(errors.InvalidTokenError):
        services.access.authenticate(token)

    assert services.keyring.take_reload_request() is True
    assert services.keyring.take_reload_request() is False
