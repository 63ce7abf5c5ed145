"""Accounts by email: confirming an address, resetting a forgotten password, changing the
address. Every link is a single-use token (see core/email_tokens.py) mailed through the
outbox in the same transaction as the change that asked for it."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import NoReturn

from sqlalchemy.engine import Connection

from keyturn import errors
from keyturn.clock import Clock
from keyturn.config import Settings
from keyturn.core.context import NO_CONTEXT, RequestContext
from keyturn.core.email_tokens import (
    Purpose,
    StoredEmailToken,
    TokenVerdict,
    hash_email_token,
    is_email_token_shaped,
    judge_email_token,
    new_email_token,
    password_fingerprint,
)
from keyturn.core.passwords import PasswordHashing
from keyturn.core.sessions import UserRecord
from keyturn.observability import metrics
from keyturn.ratelimit.limits import (
    KNOWN_ADDRESS_AGE,
    address_key,
    known_address_account_key,
    login_account_key,
)
from keyturn.ratelimit.protocol import RateLimiter
from keyturn.revocation.service import RevocationService
from keyturn.services.accounts import check_password, normalize_email
from keyturn.services.audit import AuditTrail
from keyturn.services.login import LoginThrottle
from keyturn.services.verification import EmailLinks
from keyturn.storage import audit as audit_store
from keyturn.storage import email_tokens as email_token_store
from keyturn.storage import users as user_store
from keyturn.storage.db import Database
from keyturn.storage.users import DuplicateUserError, email_key

_VERIFYING = frozenset({Purpose.VERIFY, Purpose.EMAIL_CHANGE})
_RESETTING = frozenset({Purpose.RESET})
RESET_LINK_SENT = "If an account uses this address, a link to choose a new password is on its way."


class RecoveryService:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        clock: Clock,
        *,
        links: EmailLinks,
        hashing: PasswordHashing,
        limiter: RateLimiter,
        throttle: LoginThrottle,
        revocation: RevocationService,
        audit: AuditTrail,
    ) -> None:
        self._settings = settings
        self._database = database
        self._clock = clock
        self._links = links
        self._mailer = links.mailer
        self._hashing = hashing
        self._limiter = limiter
        self._throttle = throttle
        self._revocation = revocation
        self._audit = audit
        self._window = timedelta(seconds=settings.email_window_seconds)

    # Address verification.

    def resend_verification(
        self, user_id: str, *, locale: str, context: RequestContext = NO_CONTEXT
    ) -> None:
        """Mail a new verification link, unless the address is verified already (then
        nothing is sent). Raises TooManyRequestsError past KEYTURN_EMAIL_MAX_PER_ADDRESS
        links per KEYTURN_EMAIL_WINDOW_SECONDS, InvalidTokenError for a gone account."""
        user = self._active_user(user_id)
        self._count("verify:user:" + user.id, limit=self._settings.email_max_per_address)
        if user.email_verified:
            return
        with self._database.transaction() as connection:
            self._links.send_verification(connection, user, locale=locale, context=context)

    def verify_email(self, token: str, *, context: RequestContext = NO_CONTEXT) -> UserRecord:
        """Use a verification link (the address is confirmed) or an email-change link (the
        account moves to the new, confirmed address). Returns the account as it is now.

        Raises InvalidLinkTokenError for an unknown, used, expired or tampered token, or one
        made for another purpose; EmailTakenError when the new address was taken by another
        account since the change was asked for (only the holder of the link, who owns that
        mailbox, learns it).
        """
        token_hash = self._shaped_hash(token)
        with self._revocation.batch() as batch:
            connection = batch.connection
            now = self._clock.now()
            stored, user = self._token_and_user(connection, token_hash)
            self._check(stored, user, purposes=_VERIFYING)
            assert stored is not None and user is not None  # noqa: S101 - checked above
            if not email_token_store.use_email_token(connection, stored.id, now=now):
                self._refuse(TokenVerdict.USED)
            if stored.purpose is Purpose.EMAIL_CHANGE:
                try:
                    user_store.set_email(connection, user.id, stored.email, now=now)
                except DuplicateUserError as error:
                    raise errors.EmailTakenError() from error
                email_token_store.end_email_tokens(
                    connection, user.id, purpose=Purpose.EMAIL_CHANGE, now=now
                )
                self._audit.record(connection, "email_changed", user_id=user.id, context=context)
            else:
                user_store.set_email_verified(connection, user.id, email=stored.email, now=now)
                self._audit.record(connection, "email_verified", user_id=user.id, context=context)
            batch.user_changed(user.id)
            updated = user_store.find_user_by_id(connection, user.id)
        assert updated is not None  # noqa: S101 - changed just above, in this transaction
        return updated

    # Email change.

    def request_email_change(
        self,
        user_id: str,
        *,
        new_email: str,
        current_password: str,
        locale: str,
        context: RequestContext = NO_CONTEXT,
    ) -> None:
        """Mail a confirmation link to `new_email` and a notice to the current address;
        nothing changes until the link is used (verify_email).

        The password is guessed under the login limits, as a password change does: a stolen
        access token must not move the account's mail elsewhere, nor become a password oracle.
        When another account has `new_email`, the answer is the same and no link is sent (the
        notice still goes to the current address), so the request reveals no other account.
        Raises InvalidEmailError, InvalidCredentialsError, TooManyRequestsError,
        ValidationFailedError when `new_email` is the account's address already.
        """
        user = self._active_user(user_id)
        address = normalize_email(new_email)
        self._check_password(user, current_password, context=context)
        if email_key(address) == email_key(user.email):
            raise errors.ValidationFailedError("This is the account's address already.")
        self._count("email_change:user:" + user.id, limit=self._settings.email_max_per_address)
        token = new_email_token()
        with self._database.transaction() as connection:
            now = self._clock.now()
            taken = user_store.find_user_by_email(connection, address) is not None
            # A newer request replaces the older: only the latest new address can be confirmed.
            email_token_store.end_email_tokens(
                connection, user.id, purpose=Purpose.EMAIL_CHANGE, now=now
            )
            # When taken: the same work, nothing sent, so the reply's timing says nothing either.
            self._mail_link(
                connection,
                None if taken else user,
                to=address,
                purpose=Purpose.EMAIL_CHANGE,
                name="email_change_confirm",
                token=token,
                ttl=self._links.verify_ttl,
                now=now,
                locale=locale,
            )
            self._mailer.enqueue(
                connection,
                to=user.email,
                name="email_change_notice",
                locale=locale,
                variables={"new_email": address},
                user_id=user.id,
            )
            self._audit.record(
                connection, "email_change_requested", user_id=user.id, context=context
            )

    # Password reset.

    def request_password_reset(
        self, email: str, *, locale: str, context: RequestContext = NO_CONTEXT
    ) -> None:
        """Mail a reset link to the account with this address, if there is one (and it is
        enabled). The caller cannot tell: an unknown address costs the same work (the
        message is composed and dropped, the same statements run) and gets the same answer.

        A newer link ends the older ones. Raises InvalidEmailError for something that is no
        address at all; TooManyRequestsError past KEYTURN_EMAIL_MAX_PER_IP requests from the
        caller's address or KEYTURN_EMAIL_MAX_PER_ADDRESS for this address, known or not.
        """
        address = normalize_email(email)
        if context.ip:
            self._count(
                "reset:ip:" + address_key(context.ip), limit=self._settings.email_max_per_ip
            )
        # A digest, so counters (in Redis, or the database) name no address.
        self._count(
            "reset:email:" + hashlib.sha256(email_key(address).encode()).hexdigest(),
            limit=self._settings.email_max_per_address,
        )
        token = new_email_token()
        with self._database.transaction() as connection:
            now = self._clock.now()
            user = user_store.find_user_by_email(connection, address)
            if user is not None and user.is_disabled:
                user = None
            email_token_store.end_email_tokens(
                connection, user.id if user else "", purpose=Purpose.RESET, now=now
            )
            self._mail_link(
                connection,
                user,
                to=user.email if user else address,
                purpose=Purpose.RESET,
                name="reset_password",
                token=token,
                ttl=self._links.reset_ttl,
                now=now,
                locale=locale,
                fingerprint=password_fingerprint(user.password_hash) if user else None,
            )
            self._audit.record(
                connection,
                "password_reset_requested",
                user_id=user.id if user else None,
                context=context,
            )

    def reset_password(
        self,
        token: str,
        *,
        new_password: str,
        locale: str,
        context: RequestContext = NO_CONTEXT,
    ) -> None:
        """Set a new password with a reset link. Every session of the user ends (their access
        tokens stop at once, on every instance), the login lockout of the account is cleared,
        the address counts as verified (the link reached it), and a notice is mailed.

        Raises InvalidLinkTokenError (unknown, used, expired, tampered, or the password or
        address changed since the link was sent), WeakPasswordError (the link stays usable).
        """
        token_hash = self._shaped_hash(token)
        with self._database.snapshot() as connection:
            stored, user = self._token_and_user(connection, token_hash)
        self._check(stored, user, purposes=_RESETTING)
        assert user is not None  # noqa: S101 - checked above
        check_password(new_password, email=user.email, username=user.username)
        new_hash = self._hashing.hash_password(new_password)
        with self._revocation.batch() as batch:
            connection = batch.connection
            now = self._clock.now()
            # Again, in the transaction: another reset or a password change may have won.
            stored, user = self._token_and_user(connection, token_hash)
            self._check(stored, user, purposes=_RESETTING)
            assert stored is not None and user is not None  # noqa: S101 - checked above
            if not email_token_store.use_email_token(connection, stored.id, now=now):
                self._refuse(TokenVerdict.USED)
            user_store.set_password_hash(connection, user.id, new_hash, now=now)
            if not user.email_verified:
                user_store.set_email_verified(connection, user.id, email=user.email, now=now)
            email_token_store.end_email_tokens(connection, user.id, purpose=Purpose.RESET, now=now)
            batch.end_user_sessions(user.id, reason="password_reset")
            batch.user_changed(user.id)
            self._audit.record(connection, "password_reset", user_id=user.id, context=context)
            self._mailer.enqueue(
                connection,
                to=user.email,
                name="password_changed",
                locale=locale,
                variables={},
                user_id=user.id,
            )
            known = audit_store.login_addresses(connection, user.id, since=now - KNOWN_ADDRESS_AGE)
        # The owner proved the mailbox: failed guesses by others no longer lock them out.
        self._limiter.reset(login_account_key(user.id))
        for ip in dict.fromkeys(known):
            self._limiter.reset(known_address_account_key(user.id, ip))

    # Shared steps.

    def _mail_link(
        self,
        connection: Connection,
        user: UserRecord | None,
        *,
        to: str,
        purpose: Purpose,
        name: str,
        token: str,
        ttl: timedelta,
        now: datetime,
        locale: str,
        fingerprint: str | None = None,
    ) -> None:
        """Store `token` for `user` and mail the link to `to`. Without a user (no account
        may receive it) the message is composed and dropped instead: the same work, so
        neither the answer nor its timing tells whether an account was there."""
        variables = {"token": token, "ttl_seconds": int(ttl.total_seconds())}
        if user is None:
            self._mailer.rehearse(connection, to=to, name=name, locale=locale, variables=variables)
            return
        email_token_store.insert_email_token(
            connection,
            token_hash=hash_email_token(token),
            purpose=purpose,
            user_id=user.id,
            email=to,
            password_fingerprint=fingerprint,
            now=now,
            expires_at=now + ttl,
        )
        self._mailer.enqueue(
            connection, to=to, name=name, locale=locale, variables=variables, user_id=user.id
        )

    def _active_user(self, user_id: str) -> UserRecord:
        with self._database.snapshot() as connection:
            user = user_store.find_user_by_id(connection, user_id)
        if user is None or user.is_disabled:
            raise errors.InvalidTokenError("The account of this access token is not active.")
        return user

    def _count(self, key: str, *, limit: int) -> None:
        wait = self._limiter.hit(key, limit=limit, window=self._window)
        if wait is not None:
            raise errors.TooManyRequestsError(
                f"Too many requests; try again in {wait} seconds.", retry_after_seconds=wait
            )

    def _check_password(self, user: UserRecord, password: str, *, context: RequestContext) -> None:
        """The account's password, guessed under the login limits (per address and per
        account, as a password change is); wrong ones are audited. Raises
        InvalidCredentialsError, TooManyRequestsError."""
        counters = self._throttle.reserve_attempt(
            user.id,
            user,
            context=context,
            event="email_change_locked",
            known_address_passes=False,
        )
        if not self._hashing.verify_password(user.password_hash, password):
            self._throttle.record_event("email_change_failed", user_id=user.id, context=context)
            raise errors.InvalidCredentialsError("The current password is incorrect.")
        self._throttle.release_attempt(counters)

    def _shaped_hash(self, token: str) -> str:
        if not is_email_token_shaped(token):
            self._refuse(TokenVerdict.UNKNOWN)
        return hash_email_token(token)

    @staticmethod
    def _token_and_user(
        connection: Connection, token_hash: str
    ) -> tuple[StoredEmailToken | None, UserRecord | None]:
        stored = email_token_store.find_email_token(connection, token_hash)
        user = user_store.find_user_by_id(connection, stored.user_id) if stored else None
        return stored, user

    def _check(
        self,
        stored: StoredEmailToken | None,
        user: UserRecord | None,
        *,
        purposes: frozenset[Purpose],
    ) -> None:
        active = user is not None and not user.is_disabled
        verdict = judge_email_token(
            stored,
            purposes=purposes,
            now=self._clock.now(),
            current_email=user.email if active and user else None,
            current_password_hash=user.password_hash if active and user else None,
        )
        if verdict is not TokenVerdict.USE:
            self._refuse(verdict)

    @staticmethod
    def _refuse(verdict: TokenVerdict) -> NoReturn:
        metrics.count_link_token_refused(verdict.value)
        raise errors.InvalidLinkTokenError()
