"""The second step of a login: a code from an authenticator app or a recovery code (set up
through services/factors.py), checked for a login waiting on an `mfa_token`.

A login whose first factor passed, for a user with a factor, gets an `mfa_token` instead of a
session (`begin_second_step`); the session opens when a second factor is shown for that token
(`complete_second_step`). Passkeys and providers finish logins through the same two methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.engine import Connection

from keyturn import errors, wire
from keyturn.clock import Clock
from keyturn.config import Settings
from keyturn.core.context import NO_CONTEXT, RequestContext
from keyturn.core.email_tokens import hash_email_token, is_email_token_shaped, new_email_token
from keyturn.core.sealing import Sealer
from keyturn.core.second_factors import (
    hash_recovery_code,
    matching_step,
    normalize_recovery_code,
    second_step_amr,
)
from keyturn.core.sessions import UserRecord
from keyturn.mail.sender import Mailer
from keyturn.services.audit import AuditTrail
from keyturn.services.issuing import IssuedTokens, IssuingService
from keyturn.services.login import LoginThrottle
from keyturn.storage import factors as factor_store
from keyturn.storage import mfa_challenges as challenge_store
from keyturn.storage import users as user_store
from keyturn.storage.db import Database

# Wrong codes one mfa_token survives; the login limits count them too.
MAX_CODE_FAILURES = 5


@dataclass(frozen=True, slots=True)
class MfaRequired:
    """A login waiting for its second factor: what `mfa_required` answers with."""

    mfa_token: str
    methods: list[str]

    def error(self) -> errors.MfaRequiredError:
        return errors.MfaRequiredError(mfa_token=self.mfa_token, methods=self.methods)


class MfaService:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        clock: Clock,
        *,
        sealer: Sealer,
        throttle: LoginThrottle,
        issuing: IssuingService,
        audit: AuditTrail,
        mailer: Mailer | None,
    ) -> None:
        self._database = database
        self._clock = clock
        self._sealer = sealer
        self._throttle = throttle
        self._issuing = issuing
        self._audit = audit
        self._mailer = mailer
        self._token_lifetime = timedelta(seconds=settings.mfa_token_seconds)

    # The second step of a login -------------------------------------------------------------

    def begin_second_step(
        self,
        user: UserRecord,
        *,
        remember_me: bool,
        context: RequestContext,
        first_amr: tuple[str, ...],
    ) -> MfaRequired:
        """Hold a login whose first factor passed until a second factor is shown: a
        single-use `mfa_token` (stored as its digest) bound to this user, remember_me,
        client and first factor, for KEYTURN_MFA_TOKEN_SECONDS."""
        token = new_email_token()
        now = self._clock.now()
        with self._database.transaction() as connection:
            methods = factor_store.factor_methods(connection, user.id)
            challenge_store.insert_challenge(
                connection,
                token_hash=hash_email_token(token),
                user_id=user.id,
                remember_me=remember_me,
                client_id=context.client_id or wire.DEFAULT_CLIENT_ID,
                first_amr=first_amr,
                now=now,
                expires_at=now + self._token_lifetime,
            )
            self._audit.record(
                connection,
                "mfa_challenged",
                user_id=user.id,
                context=context,
                detail={"amr": list(first_amr)},
            )
        return MfaRequired(mfa_token=token, methods=methods)

    def require_second_step(
        self, user: UserRecord, remember_me: bool, context: RequestContext
    ) -> errors.MfaRequiredError:
        """What a password login of a user with a factor answers (LoginService raises it)."""
        return self.begin_second_step(
            user, remember_me=remember_me, context=context, first_amr=(wire.AMR_PASSWORD,)
        ).error()

    def pending_user(self, mfa_token: str) -> UserRecord:
        """The user a live `mfa_token` waits for. Raises InvalidMfaTokenError."""
        with self._database.snapshot() as connection:
            challenge = self._live_challenge(connection, mfa_token)
            user = user_store.find_user_by_id(connection, challenge.user_id)
        if user is None or user.is_disabled:
            raise errors.InvalidMfaTokenError()
        return user

    def verify_code(
        self,
        mfa_token: str,
        *,
        code: str | None = None,
        recovery_code: str | None = None,
        locale: str = "en",
        context: RequestContext = NO_CONTEXT,
    ) -> IssuedTokens:
        """Finish a login with a code from the authenticator app or a recovery code.

        Raises InvalidMfaTokenError (unknown, used, expired, or past 5 wrong codes),
        InvalidCodeError (counted on the token and against the login limits),
        TooManyRequestsError past those limits."""
        user = self.pending_user(mfa_token)
        try:
            self.check_code(
                user, code=code, recovery_code=recovery_code, locale=locale, context=context
            )
        except errors.InvalidCodeError:
            self.count_failure(mfa_token)
            raise
        return self.complete_second_step(mfa_token, method_amr=(wire.AMR_OTP,), context=context)

    def count_failure(self, mfa_token: str) -> None:
        """Count a wrong second factor against the token: it dies after MAX_CODE_FAILURES."""
        with self._database.transaction() as connection:
            challenge = challenge_store.find_challenge(connection, hash_email_token(mfa_token))
            if challenge is not None:
                challenge_store.count_challenge_failure(connection, challenge.id)

    def complete_second_step(
        self, mfa_token: str, *, method_amr: tuple[str, ...], context: RequestContext
    ) -> IssuedTokens:
        """Open the session a login asked for, once its second factor (named by
        `method_amr`, e.g. ("otp",) or ("hwk",)) has been checked by the caller. The token
        is spent here, once. Raises InvalidMfaTokenError."""
        now = self._clock.now()
        with self._database.transaction() as connection:
            challenge = self._live_challenge(connection, mfa_token)
            if not challenge_store.use_challenge(
                connection, challenge.id, now=now, max_failures=MAX_CODE_FAILURES
            ):
                raise errors.InvalidMfaTokenError()
            user = user_store.find_user_by_id(connection, challenge.user_id)
        if user is None or user.is_disabled:
            raise errors.InvalidMfaTokenError()
        session_context = RequestContext(
            ip=context.ip, user_agent=context.user_agent, client_id=challenge.client_id
        )
        return self._issuing.open_session(
            user,
            remember_me=challenge.remember_me,
            context=session_context,
            amr=second_step_amr(challenge.first_amr, method_amr),
            auth_time=now,
        )

    def _live_challenge(
        self, connection: Connection, mfa_token: str
    ) -> challenge_store.StoredChallenge:
        if not is_email_token_shaped(mfa_token):
            raise errors.InvalidMfaTokenError()
        challenge = challenge_store.find_challenge(connection, hash_email_token(mfa_token))
        if (
            challenge is None
            or challenge.used_at is not None
            or challenge.expires_at <= self._clock.now()
            or challenge.failures >= MAX_CODE_FAILURES
        ):
            raise errors.InvalidMfaTokenError()
        return challenge

    # Checking a code ------------------------------------------------------------------------

    def check_code(
        self,
        user: UserRecord,
        *,
        code: str | None = None,
        recovery_code: str | None = None,
        locale: str = "en",
        context: RequestContext = NO_CONTEXT,
    ) -> None:
        """Accept a TOTP code (once: only a later time step than the last one accepted,
        claimed by a conditional UPDATE so two requests with one code cannot both pass) or
        spend a recovery code (its owner is mailed). Attempts count against the login
        limits. Raises InvalidCodeError, TooManyRequestsError."""
        counters = self._throttle.reserve_attempt(
            user.id, user, context=context, event="mfa_locked"
        )
        with self._database.transaction() as connection:
            accepted = False
            if code is not None:
                accepted = self._accept_totp(connection, user.id, code)
            elif recovery_code is not None:
                accepted = self._spend_recovery_code(connection, user, recovery_code, locale)
            if accepted:
                self._audit.record(
                    connection,
                    "mfa_succeeded",
                    user_id=user.id,
                    context=context,
                    detail={"method": "totp" if code is not None else "recovery_code"},
                )
        if not accepted:
            self._throttle.count_failure(counters, context)
            self._throttle.record_event("mfa_failed", user_id=user.id, context=context)
            raise errors.InvalidCodeError()
        self._throttle.release_attempt(counters)

    def _accept_totp(self, connection: Connection, user_id: str, code: str) -> bool:
        stored = factor_store.find_totp(connection, user_id)
        if stored is None or not stored.is_active:
            return False
        secret = self._sealer.unseal(stored.sealed_secret).decode("ascii")
        step = matching_step(secret, code, now=self._clock.timestamp(), after_step=stored.last_step)
        return step is not None and factor_store.claim_totp_step(connection, user_id, step)

    def _spend_recovery_code(
        self, connection: Connection, user: UserRecord, recovery_code: str, locale: str
    ) -> bool:
        normalized = normalize_recovery_code(recovery_code)
        if normalized is None or not factor_store.use_recovery_code(
            connection, user.id, hash_recovery_code(normalized), now=self._clock.now()
        ):
            return False
        if self._mailer is not None:
            self._mailer.enqueue(
                connection,
                to=user.email,
                name="recovery_code_used",
                locale=locale,
                variables={
                    "remaining": factor_store.count_unused_recovery_codes(connection, user.id)
                },
                user_id=user.id,
            )
        return True
