"""Logging in: the password check, and the throttle on failures per account and address."""

from __future__ import annotations

import secrets
from datetime import timedelta

from keyturn import errors, wire
from keyturn.config import Settings
from keyturn.core.context import NO_CONTEXT, RequestContext
from keyturn.core.passwords import PasswordHashing
from keyturn.ratelimit.protocol import RateLimiter
from keyturn.services.audit import AuditTrail
from keyturn.services.issuing import IssuedTokens, IssuingService
from keyturn.storage import users as user_store
from keyturn.storage.db import Database


class LoginService:
    """Checks a password against the failure limits and opens a session for the user."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        *,
        hashing: PasswordHashing,
        limiter: RateLimiter,
        audit: AuditTrail,
        issuing: IssuingService,
    ) -> None:
        self._settings = settings
        self._database = database
        self._hashing = hashing
        self._limiter = limiter
        self._audit = audit
        self._open_session = issuing.open_session
        self._login_window = timedelta(seconds=settings.login_window_seconds)
        # Unknown accounts are checked against this hash so they cost what known ones do.
        self._dummy_hash = hashing.hash_password(secrets.token_urlsafe(16))

    def login(
        self,
        *,
        identifier: str,
        password: str,
        remember_me: bool = True,
        context: RequestContext = NO_CONTEXT,
    ) -> IssuedTokens:
        """Check the password and open a session.

        Raises TooManyRequestsError past the failure limit (even for the right password),
        InvalidCredentialsError (the same for unknown accounts), AccountDisabledError.
        """
        account, *addresses = self._login_counters(identifier, context)
        self._check_login_counters(account, addresses, context=context)
        try:
            with self._database.snapshot() as connection:
                user = user_store.find_user_by_login(connection, identifier)
        except Exception:
            self._limiter.undo(account)  # never checked (an outage): not a failure
            raise
        if user is None:
            self._hashing.verify_password(self._dummy_hash, password)
            matched = False
        else:
            matched = self._hashing.verify_password(user.password_hash, password)
        if not matched:  # the account's count of this attempt stays: a failure
            for key in addresses:
                self._limiter.hit(
                    key, limit=self._settings.login_max_failures, window=self._login_window
                )
            self._record_event("login_failed", user_id=user.id if user else None, context=context)
            raise errors.InvalidCredentialsError()
        assert user is not None  # noqa: S101 - matched implies a user
        self._limiter.reset(account)
        if user.is_disabled:
            with self._database.transaction() as connection:
                self._audit.record(
                    connection,
                    "login_failed",
                    user_id=user.id,
                    context=context,
                    detail={"reason": wire.ACCOUNT_DISABLED},
                )
            raise errors.AccountDisabledError()
        upgraded_hash = (
            self._hashing.hash_password(password)
            if self._hashing.needs_rehash(user.password_hash)
            else None
        )
        return self._open_session(
            user, remember_me=remember_me, context=context, upgraded_hash=upgraded_hash
        )

    def _check_login_counters(
        self, account: str, addresses: list[str], *, context: RequestContext
    ) -> None:
        """Raise TooManyRequestsError when the account or the address is over the limit.

        The account's counter takes this attempt *before* its password is checked (and gives
        it back on success): guesses at one account sent in parallel would otherwise all find
        the counter low and all be tried. An address only counts failures, since one address
        (an office, a proxy) may log in many people at once.
        """
        limit = self._settings.login_max_failures
        waits = [
            self._limiter.blocked_for(key, limit=limit, window=self._login_window)
            for key in addresses
        ]
        wait = next((w for w in waits if w is not None), None)
        if wait is None:
            wait = self._limiter.hit(account, limit=limit, window=self._login_window)
            if wait is not None:
                self._limiter.undo(account)  # refused untried: not a failure
        if wait is not None:
            self._record_event("login_locked", context=context)
            raise errors.TooManyRequestsError(
                f"Too many failed logins; try again in {wait} seconds.",
                retry_after_seconds=wait,
            )

    def _login_counters(self, identifier: str, context: RequestContext) -> list[str]:
        counters = ["login:account:" + identifier.strip().casefold()[:160]]
        if context.ip:
            counters.append("login:ip:" + context.ip)
        return counters

    def _record_event(
        self, event: str, *, user_id: str | None = None, context: RequestContext
    ) -> None:
        with self._database.transaction() as connection:
            self._audit.record(connection, event, user_id=user_id, context=context)
