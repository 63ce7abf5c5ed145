"""The issuer a database belongs to: remembered on first start, so an instance started with
another KEYTURN_ISSUER (a typo, a copied configuration) refuses to run instead of minting
tokens that every resource server rejects, or accepting tokens meant for another issuer."""

from __future__ import annotations

from keyturn.clock import Clock
from keyturn.core.sealing import Sealer
from keyturn.storage import secrets as secret_store
from keyturn.storage.db import Database

ISSUER_NAME = "issuer"


class IssuerMismatchError(ValueError):
    """This instance's issuer is not the one its database was set up with."""


def pin_issuer(database: Database, issuer: str, *, sealer: Sealer, clock: Clock) -> None:
    """Remember `issuer` if the database has none yet; raise IssuerMismatchError when it
    remembers another."""
    with database.transaction() as connection:
        secret_store.put_sealed_text(
            connection, ISSUER_NAME, issuer, now=clock.now(), sealer=sealer, replace=False
        )
        pinned = secret_store.find_sealed_text(connection, ISSUER_NAME, sealer=sealer)
    if pinned != issuer:
        raise IssuerMismatchError(
            f"KEYTURN_ISSUER is {issuer} but this database was set up for {pinned};"
            f" set KEYTURN_ISSUER={pinned}, or move the database on purpose with"
            f" `keyturn db set-issuer {issuer}` (access tokens of {pinned} stop working)"
        )


def set_issuer(database: Database, issuer: str, *, sealer: Sealer, clock: Clock) -> str | None:
    """Make `issuer` the database's issuer; the one it replaces, if any."""
    with database.transaction() as connection:
        previous = secret_store.find_sealed_text(connection, ISSUER_NAME, sealer=sealer)
        secret_store.put_sealed_text(
            connection, ISSUER_NAME, issuer, now=clock.now(), sealer=sealer, replace=True
        )
    return previous
