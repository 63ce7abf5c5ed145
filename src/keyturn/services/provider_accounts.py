"""Who a provider sign-in is: the known identity's user, the account with the same verified
address, the signed-in user who links, or a new account without a password; all in one
transaction (core.federation.resolve_identity says which, and why)."""

from __future__ import annotations

import uuid

from sqlalchemy.engine import Connection

from keyturn import errors, wire
from keyturn.clock import Clock
from keyturn.config.providers import IdentityProvider
from keyturn.core.context import RequestContext
from keyturn.core.federation import (
    AccountExistsError,
    EmailRequiredError,
    IdentityInUseError,
    InvalidStateError,
    Resolution,
    resolve_identity,
)
from keyturn.core.sessions import UserRecord
from keyturn.observability import metrics
from keyturn.services.accounts import normalize_email
from keyturn.services.audit import AuditTrail
from keyturn.services.providers import ProviderIdentity
from keyturn.storage import identities as identity_store
from keyturn.storage import users as user_store
from keyturn.storage.db import Database
from keyturn.storage.identities import Identity, IdentityTakenError


class ProviderAccounts:
    def __init__(self, database: Database, clock: Clock, *, audit: AuditTrail) -> None:
        self._database = database
        self._clock = clock
        self._audit = audit

    def find_or_create(
        self,
        provider: IdentityProvider,
        identity: ProviderIdentity,
        *,
        link_user_id: str | None,
        context: RequestContext,
    ) -> UserRecord:
        """The user this identity signs in as (or is linked to).

        Raises AccountExistsError, IdentityInUseError, EmailRequiredError,
        AccountDisabledError, InvalidStateError (the linking account is gone).
        """
        email = _normalized(identity.email)
        with self._database.transaction() as connection:
            known = identity_store.find_identity(connection, provider.id, identity.subject)
            email_user = (
                user_store.find_user_by_email(connection, email)
                if email and known is None
                else None
            )
            resolution = resolve_identity(
                identity_user_id=known.user_id if known else None,
                email_user_id=email_user.id if email_user else None,
                email_user_verified=bool(email_user and email_user.email_verified),
                provider_email_verified=identity.email_verified,
                link_user_id=link_user_id,
            )
            return self._apply(
                connection,
                resolution,
                provider,
                identity,
                email,
                known,
                email_user,
                link_user_id,
                context,
            )

    def _apply(
        self,
        connection: Connection,
        resolution: Resolution,
        provider: IdentityProvider,
        identity: ProviderIdentity,
        email: str | None,
        known: Identity | None,
        email_user: UserRecord | None,
        link_user_id: str | None,
        context: RequestContext,
    ) -> UserRecord:
        now = self._clock.now()
        if resolution is Resolution.ACCOUNT_EXISTS:
            raise AccountExistsError()
        if resolution is Resolution.IN_USE:
            raise IdentityInUseError()
        if resolution in (Resolution.SIGN_IN, Resolution.ALREADY_LINKED):
            assert known is not None  # noqa: S101 - these resolutions name a known identity
            user = self._usable_user(connection, known.user_id)
            identity_store.touch_identity(connection, known.id, email=email or known.email, now=now)
            return user
        if resolution is Resolution.LINK_CURRENT:
            assert link_user_id is not None  # noqa: S101
            user = self._usable_user(connection, link_user_id)
        elif resolution is Resolution.LINK_EXISTING:
            assert email_user is not None  # noqa: S101
            user = self._usable_user(connection, email_user.id)
        else:  # CREATE
            if email is None:
                raise EmailRequiredError()
            user = self._create_user(connection, email, identity, provider, context)
        try:
            identity_store.insert_identity(
                connection,
                Identity(
                    id=uuid.uuid4().hex,
                    user_id=user.id,
                    provider=provider.id,
                    subject=identity.subject,
                    email=email,
                    created_at=now,
                    last_used_at=now,
                ),
            )
        except IdentityTakenError as error:  # a concurrent callback linked it first
            raise IdentityInUseError() from error
        self._audit.record(
            connection,
            "identity_linked",
            user_id=user.id,
            context=context,
            detail={"provider": provider.id, "how": resolution.value},
        )
        metrics.count_identity_change(provider.id, "linked")
        return user

    def _usable_user(self, connection: Connection, user_id: str) -> UserRecord:
        user = user_store.find_user_by_id(connection, user_id)
        if user is None:
            raise InvalidStateError("The account no longer exists.")
        if user.is_disabled:
            raise errors.AccountDisabledError()
        return user

    def _create_user(
        self,
        connection: Connection,
        email: str,
        identity: ProviderIdentity,
        provider: IdentityProvider,
        context: RequestContext,
    ) -> UserRecord:
        now = self._clock.now()
        try:
            user = user_store.insert_user(
                connection,
                user_id=uuid.uuid4().hex,
                email=email,
                username=None,
                password_hash=None,  # signs in through the provider; a reset sets one
                roles=(wire.ROLE_USER,),
                now=now,
                email_verified_at=now if identity.email_verified else None,
            )
        except user_store.DuplicateUserError as error:  # registered in the meantime
            raise AccountExistsError() from error
        self._audit.record(
            connection,
            "user_registered",
            user_id=user.id,
            context=context,
            detail={"provider": provider.id},
        )
        return user


def _normalized(email: str | None) -> str | None:
    if email is None:
        return None
    try:
        return normalize_email(email)
    except errors.InvalidEmailError:
        return None
