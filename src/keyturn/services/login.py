"""Logging in: the password check, and the throttle on password attempts (per account, per
address, and for an address the account knows), which password changes share."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import NoReturn

from keyturn import errors, wire
from keyturn.clock import Clock
from keyturn.config import Settings
from keyturn.core.context import NO_CONTEXT, RequestContext
from keyturn.core.passwords import PasswordHashing
from keyturn.core.sessions import UserRecord
from keyturn.ratelimit.limits import (
    KNOWN_ADDRESS_AGE,
    address_key,
    known_address_account_key,
    login_account_key,
    login_address_key,
)
from keyturn.ratelimit.protocol import RateLimiter
from keyturn.services.audit import AuditTrail
from keyturn.services.issuing import IssuedTokens, IssuingService
from keyturn.storage import audit as audit_store
from keyturn.storage import users as user_store
from keyturn.storage.db import Database


@dataclass(frozen=True, slots=True)
class _Reserved:
    """The counters a password attempt reserved: the account's (or, under the known-address
    exception, that address's own allowance for the account), and the address's (None
    without an address). `own_allowance` names the known-address counter a failure from a
    known address also counts on (None when the exception does not apply)."""

    account: str
    address: str | None
    own_allowance: str | None
    user_id: str | None


class LoginThrottle:
    """The failure limits on password attempts: a login, or the current password of a
    password change, reserves its attempt before the password is checked."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        clock: Clock,
        *,
        limiter: RateLimiter,
        audit: AuditTrail,
    ) -> None:
        self._settings = settings
        self._database = database
        self._clock = clock
        self._limiter = limiter
        self._audit = audit
        self._login_window = timedelta(seconds=settings.login_window_seconds)

    def reserve_attempt(
        self,
        subject: str,
        user: UserRecord | None,
        *,
        context: RequestContext,
        event: str,
        known_address_passes: bool = True,
    ) -> _Reserved:
        """Take this password attempt from the address's and the account's allowance, before
        the password is checked; raise TooManyRequestsError when either is used up.

        Reserving first, atomically, is what stops a parallel burst: attempts that all read a
        low count before any of them failed would otherwise all be tried. Success gives the
        reservations back, so only failures (and attempts still in flight) count. The account
        is counted by user id, so its email and its username share one allowance; an
        identifier that names no account is counted as typed, and is answered the same way.
        An address that logged into this account before has an allowance of its own (the
        same size): failures from it count there and on the account, and while the account
        is locked by failures from elsewhere (which anyone can cause by guessing) it may still
        try until its own allowance is used up. Not for password changes
        (`known_address_passes` False): a stolen token is used from wherever the owner is.
        """
        address = login_address_key(context.ip) if context.ip else None
        if address is not None:
            wait = self._limiter.reserve(
                address,
                limit=self._settings.login_max_failures_per_ip,
                window=self._login_window,
            )
            if wait is not None:
                self._refuse_attempt(wait, event=event, user=user, context=context)
        account = login_account_key(subject)
        own = (
            known_address_account_key(subject, context.ip)
            if known_address_passes and context.ip
            else None
        )
        reserved = _Reserved(account, address, own, user.id if user else None)
        limit = self._settings.login_max_failures
        wait = self._limiter.reserve(account, limit=limit, window=self._login_window)
        if wait is None:
            return reserved
        # Asked for unknown accounts too, so a lock answers as fast either way.
        if (
            own is not None
            and self._is_known_address(reserved.user_id, context)
            and self._limiter.reserve(own, limit=limit, window=self._login_window) is None
        ):
            return _Reserved(own, address, None, reserved.user_id)
        if address is not None:
            self._limiter.undo(address)  # refused untried: not a failure
        self._refuse_attempt(wait, event=event, user=user, context=context)

    def count_failure(self, reserved: _Reserved, context: RequestContext) -> None:
        """A failure from an address the account knows also uses up that address's own
        allowance (the reservations already count it everywhere else)."""
        if reserved.own_allowance is not None and self._is_known_address(reserved.user_id, context):
            self._limiter.hit(
                reserved.own_allowance,
                limit=self._settings.login_max_failures,
                window=self._login_window,
            )

    def release_attempt(self, reserved: _Reserved) -> None:
        """The attempt succeeded: the address gets its count back, the account (or the
        address's own allowance for it) starts over."""
        if reserved.address is not None:
            self._limiter.undo(reserved.address)
        self._limiter.reset(reserved.account)

    def _refuse_attempt(
        self, wait: int, *, event: str, user: UserRecord | None, context: RequestContext
    ) -> NoReturn:
        self.record_event(event, user_id=user.id if user else None, context=context)
        raise errors.TooManyRequestsError(
            f"Too many failed attempts; try again in {wait} seconds.",
            retry_after_seconds=wait,
        )

    def _is_known_address(self, user_id: str | None, context: RequestContext) -> bool:
        """Whether the account logged in successfully from this address (IPv6: this /64)
        in the last KNOWN_ADDRESS_DAYS."""
        if not context.ip:
            return False
        since = self._clock.now() - KNOWN_ADDRESS_AGE
        with self._database.snapshot() as connection:
            addresses = audit_store.login_addresses(connection, user_id or "", since=since)
        here = address_key(context.ip)
        return any(address_key(address) == here for address in addresses)

    def record_event(
        self, event: str, *, user_id: str | None = None, context: RequestContext
    ) -> None:
        """Audit `event` in a transaction of its own."""
        with self._database.transaction() as connection:
            self._audit.record(connection, event, user_id=user_id, context=context)


class LoginService:
    """Checks a password against the failure limits and opens a session for the user."""

    def __init__(
        self,
        database: Database,
        *,
        hashing: PasswordHashing,
        throttle: LoginThrottle,
        audit: AuditTrail,
        issuing: IssuingService,
        require_verified_email: bool = False,
        second_step: Callable[[UserRecord, bool, RequestContext], errors.MfaRequiredError]
        | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._clock = clock
        self._database = database
        # services/mfa.py: holds the login of a user with a second factor (an MfaRequiredError
        # carrying the mfa_token) instead of opening the session.
        self._second_step = second_step
        self._hashing = hashing
        self._audit = audit
        self._require_verified_email = require_verified_email
        self._reserve_attempt = throttle.reserve_attempt
        self._count_failure = throttle.count_failure
        self._release_attempt = throttle.release_attempt
        self._record_event = throttle.record_event
        self._open_session = issuing.open_session
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

        Raises TooManyRequestsError past the failure limits (for the right password too,
        unless it comes from an address this account logged in from before),
        InvalidCredentialsError (the same for unknown accounts), AccountDisabledError,
        EmailNotVerifiedError (KEYTURN_REQUIRE_VERIFIED_EMAIL), MfaRequiredError (the user
        has a second factor: the login goes on at POST /api/auth/mfa/verify).
        """
        with self._database.snapshot() as connection:
            user = user_store.find_user_by_login(connection, identifier)
        subject = user.id if user else identifier.strip().casefold()[:160]
        counters = self._reserve_attempt(subject, user, context=context, event="login_locked")
        if user is None:
            self._hashing.verify_password(self._dummy_hash, password)
            matched = False
        else:
            matched = self._hashing.verify_password(user.password_hash, password)
        if not matched:  # the reserved counts stay: they are this failure
            self._count_failure(counters, context)
            self._record_event("login_failed", user_id=user.id if user else None, context=context)
            raise errors.InvalidCredentialsError()
        assert user is not None  # noqa: S101 - matched implies a user
        self._release_attempt(counters)
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
        # After the password check, so the answer tells only the owner the address is unverified.
        if self._require_verified_email and not user.email_verified:
            with self._database.transaction() as connection:
                self._audit.record(
                    connection,
                    "login_failed",
                    user_id=user.id,
                    context=context,
                    detail={"reason": wire.EMAIL_NOT_VERIFIED},
                )
            raise errors.EmailNotVerifiedError()
        upgraded_hash = (
            self._hashing.hash_password(password)
            if self._hashing.needs_rehash(user.password_hash)
            else None
        )
        if user.mfa_enabled:
            if self._second_step is None:  # fail closed: never a session without the factor
                raise errors.KeyturnError("This login needs a second factor Keyturn cannot ask.")
            if upgraded_hash is not None and self._clock is not None:
                with self._database.transaction() as connection:
                    user_store.set_password_hash(
                        connection, user.id, upgraded_hash, now=self._clock.now()
                    )
            raise self._second_step(user, remember_me, context)
        return self._open_session(
            user, remember_me=remember_me, context=context, upgraded_hash=upgraded_hash
        )
