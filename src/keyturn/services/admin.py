"""Administration: listing users, disabling and enabling them, changing their roles and
passwords; and a user closing their own account, which ends the same way a deletion does."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from keyturn import errors, wire
from keyturn.clock import Clock
from keyturn.core.audit import AuditEvent
from keyturn.core.context import NO_CONTEXT, RequestContext
from keyturn.core.passwords import PasswordHashing
from keyturn.core.sessions import UserRecord
from keyturn.ratelimit.limits import (
    KNOWN_ADDRESS_AGE,
    known_address_account_key,
    login_account_key,
)
from keyturn.ratelimit.protocol import RateLimiter
from keyturn.revocation.service import RevocationService
from keyturn.services.accounts import check_password, check_roles
from keyturn.services.audit import AuditTrail
from keyturn.services.login import LoginThrottle
from keyturn.storage import audit as audit_store
from keyturn.storage import users as user_store
from keyturn.storage.db import Database

MAX_PAGE_SIZE = 200


class AdminService:
    def __init__(
        self,
        database: Database,
        clock: Clock,
        *,
        revocation: RevocationService,
        audit: AuditTrail,
        hashing: PasswordHashing,
        limiter: RateLimiter,
        throttle: LoginThrottle,
    ) -> None:
        self._database = database
        self._clock = clock
        self._revocation = revocation
        self._audit = audit
        self._hashing = hashing
        self._limiter = limiter
        self._throttle = throttle

    def list_users(
        self, *, limit: int = 50, offset: int = 0, email_contains: str | None = None
    ) -> tuple[list[UserRecord], int]:
        """A page of users (oldest first) and the number that match `email_contains`."""
        with self._database.snapshot() as connection:
            return user_store.list_users(
                connection,
                limit=max(1, min(limit, MAX_PAGE_SIZE)),
                offset=max(0, offset),
                email_contains=email_contains,
            )

    def list_audit_events(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        user_id: str | None = None,
        event: str | None = None,
    ) -> tuple[list[AuditEvent], int]:
        """A page of the audit trail (newest first) and the number of events that match."""
        with self._database.snapshot() as connection:
            return audit_store.list_events(
                connection,
                limit=max(1, min(limit, MAX_PAGE_SIZE)),
                offset=max(0, offset),
                user_id=user_id,
                event=event,
            )

    def find_user(self, reference: str) -> UserRecord:
        """By id, email or username; raises UserNotFoundError."""
        _refuse_impossible_reference(reference)
        with self._database.snapshot() as connection:
            user = user_store.find_user_by_id(
                connection, reference
            ) or user_store.find_user_by_login(connection, reference)
        if user is None:
            raise errors.UserNotFoundError()
        return user

    def set_disabled(
        self, user_id: str, disabled: bool, *, context: RequestContext = NO_CONTEXT
    ) -> None:
        """Disable (ending every session and access token at once) or enable a user.

        Raises UserNotFoundError, LastAdminError for disabling the only enabled admin.
        """
        _refuse_impossible_reference(user_id)
        now = self._clock.now()
        with self._revocation.batch() as batch:
            if disabled:
                _keep_an_admin(batch.connection, user_id)
            if not user_store.set_disabled(
                batch.connection, user_id, disabled_at=now if disabled else None, now=now
            ):
                raise errors.UserNotFoundError()
            batch.user_changed(user_id)
            if disabled:
                batch.end_user_sessions(user_id, reason="user_disabled")
            self._audit.record(
                batch.connection,
                "user_disabled" if disabled else "user_enabled",
                user_id=user_id,
                context=context,
            )

    def unlock_user(self, user_id: str, *, context: RequestContext = NO_CONTEXT) -> None:
        """Clear the account's failed-login counts (its own, and the allowance of each address
        it logged in from before), so the right password works again at once; the counts per
        client address stay. Raises UserNotFoundError."""
        _refuse_impossible_reference(user_id)
        since = self._clock.now() - KNOWN_ADDRESS_AGE
        with self._database.transaction() as connection:
            if user_store.find_user_by_id(connection, user_id) is None:
                raise errors.UserNotFoundError()
            known = audit_store.login_addresses(connection, user_id, since=since)
            self._audit.record(connection, "user_unlocked", user_id=user_id, context=context)
        self._limiter.reset(login_account_key(user_id))
        for ip in dict.fromkeys(known):
            self._limiter.reset(known_address_account_key(user_id, ip))

    def delete_user(self, user_id: str, *, context: RequestContext = NO_CONTEXT) -> None:
        """Delete a user: their sessions end first, so their access tokens stop working at
        once on every instance; the audit trail keeps the deletion. Raises UserNotFoundError,
        LastAdminError for the only enabled admin."""
        _refuse_impossible_reference(user_id)
        with self._revocation.batch() as batch:
            _keep_an_admin(batch.connection, user_id)
            batch.end_user_sessions(user_id, reason="user_deleted")
            batch.user_changed(user_id)
            if not user_store.delete_user(batch.connection, user_id):
                raise errors.UserNotFoundError()
            self._audit.record(batch.connection, "user_deleted", user_id=user_id, context=context)

    def set_password(
        self,
        user_id: str,
        new_password: str,
        *,
        actor_id: str | None = None,
        context: RequestContext = NO_CONTEXT,
    ) -> UserRecord:
        """Give a user a new password chosen by an admin (`actor_id`; None: the CLI). Every
        session of the user ends, so whoever held the old password is signed out everywhere.

        Raises UserNotFoundError, WeakPasswordError (with `reasons`).
        """
        _refuse_impossible_reference(user_id)
        with self._database.snapshot() as connection:
            user = user_store.find_user_by_id(connection, user_id)
        if user is None:
            raise errors.UserNotFoundError()
        check_password(new_password, email=user.email, username=user.username)
        new_hash = self._hashing.hash_password(new_password)
        with self._revocation.batch() as batch:
            if user_store.find_user_by_id(batch.connection, user_id) is None:
                raise errors.UserNotFoundError()  # deleted while the hash was computed
            user_store.set_password_hash(batch.connection, user_id, new_hash, now=self._clock.now())
            batch.end_user_sessions(user_id, reason="password_set")
            batch.user_changed(user_id)
            self._audit.record(
                batch.connection,
                "password_set",
                user_id=user_id,
                context=context,
                detail={"by": actor_id or "cli"},
            )
        return user

    def delete_own_account(
        self,
        user_id: str,
        *,
        current_password: str,
        session_id: str | None = None,
        context: RequestContext = NO_CONTEXT,
    ) -> None:
        """A user closes their own account: the password is asked again, because a stolen
        access token or an unattended browser must not be enough to destroy an account.
        Every session and access token ends at once, as on an admin's deletion.

        Raises InvalidCredentialsError for a wrong password, TooManyRequestsError past the
        login failure limits (the allowance logins use, even for the right password),
        LastAdminError for the only enabled admin, UserNotFoundError for an account already
        gone.
        """
        _refuse_impossible_reference(user_id)
        with self._database.snapshot() as connection:
            user = user_store.find_user_by_id(connection, user_id)
        if user is None:
            raise errors.UserNotFoundError()
        # A stolen session must not become an unlimited password oracle: the password is
        # guessed under the login limits (one allowance with logins and password changes),
        # reserved before the check so that guesses sent in parallel cannot all be tried.
        counters = self._throttle.reserve_attempt(
            user.id,
            user,
            context=context,
            event="account_delete_locked",
            known_address_passes=False,
        )
        if not self._hashing.verify_password(user.password_hash, current_password):
            with self._database.transaction() as connection:
                self._audit.record(
                    connection,
                    "account_delete_failed",
                    user_id=user_id,
                    session_id=session_id,
                    context=context,
                )
            raise errors.InvalidCredentialsError("The password is incorrect.")
        self._throttle.release_attempt(counters)
        with self._revocation.batch() as batch:
            _keep_an_admin(batch.connection, user_id)
            batch.end_user_sessions(user_id, reason="account_deleted")
            batch.user_changed(user_id)
            if not user_store.delete_user(batch.connection, user_id):
                raise errors.UserNotFoundError()
            self._audit.record(
                batch.connection,
                "account_deleted",
                user_id=user_id,
                session_id=session_id,
                context=context,
            )

    def set_roles(
        self, user_id: str, roles: tuple[str, ...], *, context: RequestContext = NO_CONTEXT
    ) -> UserRecord:
        """Replace the user's roles; their sessions end so no token carries the old roles.

        Raises UserNotFoundError, ValidationFailedError for an unknown role, LastAdminError
        for taking the admin role from the only enabled admin.
        """
        _refuse_impossible_reference(user_id)
        roles = check_roles(roles)
        now = self._clock.now()
        with self._revocation.batch() as batch:
            connection = batch.connection
            if wire.ROLE_ADMIN not in roles:
                _keep_an_admin(connection, user_id)
            if not user_store.set_roles(connection, user_id, roles, now=now):
                raise errors.UserNotFoundError()
            batch.user_changed(user_id)
            batch.end_user_sessions(user_id, reason="roles_changed")
            self._audit.record(
                connection,
                "roles_changed",
                user_id=user_id,
                context=context,
                detail={"roles": list(roles)},
            )
            user = user_store.find_user_by_id(connection, user_id)
        assert user is not None  # noqa: S101 - updated above in this transaction
        return user


def _keep_an_admin(connection: Connection, user_id: str) -> None:
    """Raise LastAdminError when `user_id` is the only enabled admin: disabling, deleting
    or demoting them would leave nobody able to administer Keyturn through the API."""
    if user_store.lock_active_admin_ids(connection) == {user_id}:
        raise errors.LastAdminError()


def _refuse_impossible_reference(reference: str) -> None:
    # No id, email or username holds a control character; PostgreSQL refuses NUL outright.
    if not reference or any(ord(char) < 32 for char in reference):
        raise errors.UserNotFoundError()
