"""Secrets in the database (private signing keys, the CSRF key) are sealed with the key from
configuration: a copy of the database alone reveals none of them."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import insert, select

from keyturn.core.sealing import Sealer, SealingError, new_sealing_key
from keyturn.storage.db import Database
from keyturn.storage.models import server_secrets, signing_keys
from tests.support.api import bearer, login
from tests.support.environment import ApiFactory


def services_of(api: httpx.AsyncClient) -> Any:
    return api.app.state.services  # type: ignore[attr-defined]


def stored_secrets(database_url: str) -> list[str]:
    database = Database(database_url)
    try:
        with database.snapshot() as connection:
            keys = connection.execute(select(signing_keys.c.private_key_pem)).scalars().all()
            others = connection.execute(select(server_secrets.c.value)).scalars().all()
    finally:
        database.dispose()
    return [*keys, *others]


def looks_plain(value: str) -> bool:
    return "PRIVATE KEY" in value or re.fullmatch(r"[0-9a-f]{64}", value) is not None


async def test_signing_keys_and_csrf_secret_are_not_stored_in_plain_text(
    make_api: ApiFactory, database_url: str
) -> None:
    """The raw rows hold neither a PEM nor the CSRF key's hex."""
    api = await make_api(secrets_key=new_sealing_key())
    await login(api)

    rows = stored_secrets(database_url)

    assert len(rows) >= 2  # a signing key and the CSRF key
    assert not [row for row in rows if looks_plain(row)]


async def test_plain_text_secrets_from_before_are_sealed_on_start_and_keep_working(
    make_api: ApiFactory, database_url: str
) -> None:
    """A database written before sealing existed: on start its key and CSRF secret are sealed
    with the configured key, and the same signing key goes on signing and verifying."""
    private_key = ed25519.Ed25519PrivateKey.generate()
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    csrf_hex = "ab" * 32
    database = Database(database_url)
    with database.transaction() as connection:
        connection.execute(
            insert(signing_keys).values(
                kid="from-before",
                algorithm="EdDSA",
                private_key_pem=pem,
                created_at=datetime(2026, 1, 1, tzinfo=UTC),
            )
        )
        connection.execute(
            insert(server_secrets).values(
                name="csrf", value=csrf_hex, created_at=datetime(2026, 1, 1, tzinfo=UTC)
            )
        )
    database.dispose()
    sealing_key = new_sealing_key()

    api = await make_api(secrets_key=sealing_key)
    tokens = await login(api)

    assert jwt.get_unverified_header(tokens.access_token)["kid"] == "from-before"
    public = private_key.public_key()
    assert jwt.decode(
        tokens.access_token,
        public,
        algorithms=["EdDSA"],
        audience="keyturn",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert (await api.get("/api/auth/me", headers=bearer(tokens.access_token))).status_code == 200
    rows = stored_secrets(database_url)
    assert not [row for row in rows if looks_plain(row)]
    # Every row opens with the key; the two from before are among them (the server may have
    # made secrets of its own since, sealed from the start).
    opened = {Sealer([sealing_key]).unseal(row).decode() for row in rows}
    assert {pem, csrf_hex} <= opened


async def test_secrets_sealed_with_an_older_key_open_and_are_sealed_again(
    make_api: ApiFactory, database_url: str
) -> None:
    """Changing the sealing key: the old one, listed in KEYTURN_SECRETS_OLD_KEYS, opens what
    it sealed, and start seals it all again with the new one."""
    old, new = new_sealing_key(), new_sealing_key()
    first = await make_api(secrets_key=old)
    tokens = await login(first)

    second = await make_api(secrets_key=new, secrets_old_keys=f"{new_sealing_key()},{old}")

    response = await second.get("/api/auth/me", headers=bearer(tokens.access_token))
    assert response.status_code == 200
    only_new = Sealer([new])
    for row in stored_secrets(database_url):
        only_new.unseal(row)


async def test_a_database_sealed_with_another_key_refuses_to_start(
    make_api: ApiFactory,
) -> None:
    """Without the key that sealed them, the secrets cannot be read: the server does not
    start (nor replace them, which would lose the signing keys)."""
    await make_api(secrets_key=new_sealing_key())

    with pytest.raises(SealingError, match="KEYTURN_SECRETS_KEY"):
        await make_api(secrets_key=new_sealing_key())
