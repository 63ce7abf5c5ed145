"""A user's sessions: logging out (one or all), listing and ending them, revoking a token
(RFC 7009), and changing the password, which ends the others."""

from __future__ import annotations

from keyturn import errors
from keyturn.clock import Clock
from keyturn.core.context import NO_CONTEXT, RequestContext
from keyturn.core.passwords import PasswordHashing
from keyturn.core.refresh import hash_refresh_token, is_refresh_token_shaped
from keyturn.core.sessions import Session, SessionState, session_state
from keyturn.core.tokens import AccessClaims
from keyturn.revocation.service import RevocationService
from keyturn.services.access import AccessService
from keyturn.services.accounts import check_password
from keyturn.services.audit import AuditTrail
from keyturn.services.login import LoginThrottle
from keyturn.storage import refresh_tokens as refresh_token_store
from keyturn.storage import sessions as session_store
from keyturn.storage import users as user_store
from keyturn.storage.db import Database


class SessionService:
    """Ends sessions and tokens on the user's behalf, and lists what is still live."""

    def __init__(
        self,
        database: Database,
        clock: Clock,
        *,
        hashing: PasswordHashing,
        revocation: RevocationService,
        audit: AuditTrail,
        access: AccessService,
        throttle: LoginThrottle,
    ) -> None:
        self._database = database
        self._clock = clock
        self._hashing = hashing
        self._revocation = revocation
        self._audit = audit
        self._access = access
        self._reserve_attempt = throttle.reserve_attempt
        self._release_attempt = throttle.release_attempt
        self._record_event = throttle.record_event

    def session_of_refresh_token(self, refresh_token: str) -> Session | None:
        """The session a refresh token belongs to (ended or not); None for an unknown one."""
        if not is_refresh_token_shaped(refresh_token):
            return None
        with self._database.snapshot() as connection:
            found = refresh_token_store.find_refresh_token(
                connection, hash_refresh_token(refresh_token)
            )
        return found[1] if found else None

    def logout(
        self,
        *,
        claims: AccessClaims | None = None,
        refresh_token: str | None = None,
        context: RequestContext = NO_CONTEXT,
    ) -> None:
        """End the session named by the access token or the refresh token (both: both, when
        they belong to the same user). Raises InvalidRefreshTokenError for an unknown one."""
        session_ids: list[str] = []
        user_id = claims.subject if claims else None
        if claims is not None:
            session_ids.append(claims.session_id)
        if refresh_token is not None:
            session = self.session_of_refresh_token(refresh_token)
            if session is None:
                if claims is None:
                    raise errors.InvalidRefreshTokenError()
            elif user_id is None or session.user_id == user_id:
                session_ids.append(session.id)
                user_id = session.user_id
        with self._revocation.batch() as batch:
            for revocation in batch.end_sessions(session_ids, reason="logout"):
                self._audit.record(
                    batch.connection,
                    "logout",
                    user_id=user_id,
                    session_id=revocation.subject,
                    context=context,
                )

    def logout_all(self, user_id: str, *, context: RequestContext = NO_CONTEXT) -> None:
        """End every session of the user."""
        with self._revocation.batch() as batch:
            ended = batch.end_user_sessions(user_id, reason="logout_all")
            self._audit.record(
                batch.connection,
                "logout_all",
                user_id=user_id,
                context=context,
                detail={"sessions": len(ended)},
            )

    def list_sessions(self, user_id: str) -> list[Session]:
        """The user's live sessions, most recently used first."""
        with self._database.snapshot() as connection:
            return session_store.list_live_sessions(connection, user_id, now=self._clock.now())

    def end_session(
        self, user_id: str, session_id: str, *, context: RequestContext = NO_CONTEXT
    ) -> None:
        """End one of the user's own sessions; SessionNotFoundError for anyone else's."""
        with self._revocation.batch() as batch:
            session = session_store.find_session(batch.connection, session_id)
            if session is None or session.user_id != user_id:
                raise errors.SessionNotFoundError()
            if session_state(session, now=self._clock.now()) is not SessionState.ACTIVE:
                raise errors.SessionNotFoundError()
            batch.end_sessions([session_id], reason="revoked")
            self._audit.record(
                batch.connection,
                "session_revoked",
                user_id=user_id,
                session_id=session_id,
                context=context,
            )

    def change_password(
        self,
        claims: AccessClaims,
        *,
        current_password: str,
        new_password: str,
        context: RequestContext = NO_CONTEXT,
    ) -> None:
        """Replace the password and end the user's other sessions.

        The current password is guessed under the login limits (a stolen access token must
        not become an unlimited password oracle), and every wrong one is audited.
        Raises InvalidCredentialsError for a wrong current password, TooManyRequestsError
        past the failure limits, WeakPasswordError.
        """
        user = self._access.load_user(claims.subject)
        counters = self._reserve_attempt(
            user.id,
            user,
            context=context,
            event="password_change_locked",
            known_address_passes=False,
        )
        if not self._hashing.verify_password(user.password_hash, current_password):
            self._record_event("password_change_failed", user_id=user.id, context=context)
            raise errors.InvalidCredentialsError("The current password is incorrect.")
        self._release_attempt(counters)
        check_password(new_password, email=user.email, username=user.username)
        new_hash = self._hashing.hash_password(new_password)
        with self._revocation.batch() as batch:
            user_store.set_password_hash(batch.connection, user.id, new_hash, now=self._clock.now())
            batch.end_user_sessions(user.id, reason="password_changed", keep=claims.session_id)
            batch.user_changed(user.id)
            self._audit.record(
                batch.connection,
                "password_changed",
                user_id=user.id,
                session_id=claims.session_id,
                context=context,
            )

    def revoke(self, token: str, *, context: RequestContext = NO_CONTEXT) -> None:
        """RFC 7009: make a token stop working; a token Keyturn does not know is no error.

        A refresh token ends its whole session (as logout does, access tokens included); an
        access token is revoked by its `jti` alone, leaving its session and refresh token.
        Raises ServiceUnavailableError when the revocation list cannot be trusted.
        """
        if is_refresh_token_shaped(token):
            if self.session_of_refresh_token(token) is not None:
                self.logout(refresh_token=token, context=context)
            return
        try:
            claims = self._access.authenticate(token)
        except errors.BearerTokenError:
            return  # expired, forged or already revoked: nothing left to revoke
        with self._revocation.batch() as batch:
            batch.revoke_token(claims.token_id)
            self._audit.record(
                batch.connection,
                "access_token_revoked",
                user_id=claims.subject,
                session_id=claims.session_id,
                context=context,
            )
