"""The provider identities linked to an account: listing them, and unlinking one unless it is
the account's last way in."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from keyturn import errors
from keyturn.clock import Clock
from keyturn.core.context import RequestContext
from keyturn.core.passwords import NO_PASSWORD
from keyturn.core.sessions import UserRecord
from keyturn.observability import metrics
from keyturn.services.audit import AuditTrail
from keyturn.storage import identities as identity_store
from keyturn.storage import passkeys as passkey_store
from keyturn.storage import users as user_store
from keyturn.storage.db import Database
from keyturn.storage.identities import Identity


class IdentityService:
    def __init__(self, database: Database, clock: Clock, *, audit: AuditTrail) -> None:
        self._database = database
        self._clock = clock
        self._audit = audit

    def identities(self, user_id: str) -> list[Identity]:
        """The provider identities the user signs in with, oldest first."""
        with self._database.snapshot() as connection:
            return identity_store.identities_of(connection, user_id)

    def unlink(self, user_id: str, identity_id: str, *, context: RequestContext) -> None:
        """Unlink one of the user's identities.

        Raises IdentityNotFoundError (not the caller's), LastSignInMethodError when it is
        the user's last way in.
        """
        with self._database.transaction() as connection:
            # Locked: two unlinks at once must not each leave the other as the last way in.
            user = user_store.lock_user(connection, user_id)
            if user is None:
                raise errors.IdentityNotFoundError()
            mine = identity_store.identities_of(connection, user_id)
            target = next((one for one in mine if one.id == identity_id), None)
            if target is None:
                raise errors.IdentityNotFoundError()
            if sign_in_methods_left(connection, user, without_identity=target.id) == 0:
                raise errors.LastSignInMethodError()
            identity_store.delete_identity(connection, target.id, user_id=user_id)
            self._audit.record(
                connection,
                "identity_unlinked",
                user_id=user_id,
                context=context,
                detail={"provider": target.provider},
            )
        metrics.count_identity_change(target.provider, "unlinked")


def sign_in_methods_left(
    connection: Connection,
    user: UserRecord,
    *,
    without_identity: str | None = None,
    without_passkey: str | None = None,
) -> int:
    """How many ways into the account remain once `without_identity` is unlinked (or
    `without_passkey` removed): a password, every other linked identity, every other passkey
    (each signs in without a password)."""
    identities = identity_store.identities_of(connection, user.id)
    others = sum(1 for identity in identities if identity.id != without_identity)
    passkeys = passkey_store.list_passkeys(connection, user.id)
    others += sum(1 for passkey in passkeys if passkey.id != without_passkey)
    return others + (0 if user.password_hash == NO_PASSWORD else 1)
