"""Reauthentication ("sudo mode"): the owner of a session proves again who they are, and the
session's `auth_time` moves to now, so changes that need a recent login go through."""

from __future__ import annotations

from keyturn import errors
from keyturn.clock import Clock
from keyturn.config import Settings
from keyturn.core.context import NO_CONTEXT, RequestContext
from keyturn.core.passwords import PasswordHashing
from keyturn.core.tokens import AccessClaims
from keyturn.revocation.service import RevocationService
from keyturn.services.access import AccessService
from keyturn.services.audit import AuditTrail
from keyturn.services.issuing import IssuedTokens, IssuingService
from keyturn.services.login import LoginThrottle
from keyturn.services.mfa import MfaService
from keyturn.storage import sessions as session_store
from keyturn.storage.db import Database


class ReauthenticationService:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        clock: Clock,
        *,
        hashing: PasswordHashing,
        throttle: LoginThrottle,
        access: AccessService,
        issuing: IssuingService,
        mfa: MfaService,
        revocation: RevocationService,
        audit: AuditTrail,
    ) -> None:
        self._reauth_seconds = settings.reauth_seconds
        self._database = database
        self._clock = clock
        self._hashing = hashing
        self._throttle = throttle
        self._access = access
        self._issuing = issuing
        self._mfa = mfa
        self._revocation = revocation
        self._audit = audit

    def is_recent(self, claims: AccessClaims) -> bool:
        """Whether the login behind this token is within KEYTURN_REAUTH_SECONDS."""
        return self._clock.timestamp() - claims.auth_time <= self._reauth_seconds

    def reauthenticate(
        self,
        claims: AccessClaims,
        *,
        password: str | None = None,
        code: str | None = None,
        recovery_code: str | None = None,
        locale: str = "en",
        context: RequestContext = NO_CONTEXT,
    ) -> IssuedTokens:
        """Check the password, a TOTP code or a recovery code of the caller and mint a new
        access token for the same session with auth_time = now (its refreshes keep it).
        Wrong answers count against the login limits. Raises InvalidCredentialsError,
        InvalidCodeError, TooManyRequestsError, InvalidTokenError (session ended)."""
        user = self._access.load_user(claims.subject)
        if password is not None:
            counters = self._throttle.reserve_attempt(
                user.id,
                user,
                context=context,
                event="reauthentication_locked",
                known_address_passes=False,
            )
            if not self._hashing.verify_password(user.password_hash, password):
                self._throttle.record_event(
                    "reauthentication_failed", user_id=user.id, context=context
                )
                raise errors.InvalidCredentialsError("The password is incorrect.")
            self._throttle.release_attempt(counters)
        else:
            self._mfa.check_code(
                user, code=code, recovery_code=recovery_code, locale=locale, context=context
            )
        now = self._clock.now()
        with self._revocation.batch() as batch:
            connection = batch.connection
            if not session_store.set_auth_time(connection, claims.session_id, auth_time=now):
                raise errors.InvalidTokenError("The session of this access token has ended.")
            session = session_store.find_session(connection, claims.session_id)
            self._audit.record(
                connection,
                "reauthenticated",
                user_id=user.id,
                session_id=claims.session_id,
                context=context,
                detail={"method": "password" if password is not None else "code"},
            )
        assert session is not None  # noqa: S101 - set_auth_time found it in this transaction
        return self._issuing.issue_tokens(
            user,
            session_id=session.id,
            client_id=session.client_id,
            refresh_token="",
            remember_me=session.remember_me,
            amr=session.amr,
            auth_time=now,
        )
