"""Issuing tokens: opening a session for a user who has proved who they are, and minting the
access token that goes with every refresh token handed out."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from keyturn import wire
from keyturn.clock import Clock
from keyturn.config import Settings
from keyturn.core.cache import BoundedTtlCache
from keyturn.core.context import RequestContext
from keyturn.core.refresh import hash_refresh_token, new_refresh_token
from keyturn.core.sessions import Session, SessionLifetimes, UserRecord, new_session_id
from keyturn.core.tokens import AccessClaims, mint_access_token
from keyturn.revocation.service import RevocationBatch, RevocationService
from keyturn.services.audit import AuditTrail
from keyturn.services.keyring import KeyringService
from keyturn.storage import refresh_tokens as refresh_token_store
from keyturn.storage import sessions as session_store
from keyturn.storage import users as user_store


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int
    claims: AccessClaims
    user: UserRecord
    remember_me: bool


def session_lifetimes(settings: Settings) -> dict[bool, SessionLifetimes]:
    """How long a session may idle, and live at most, by its remember_me."""
    absolute = settings.session_max_age_seconds
    return {
        remember_me: SessionLifetimes(
            idle=timedelta(seconds=min(idle, absolute)), absolute=timedelta(seconds=absolute)
        )
        for remember_me, idle in (
            (True, settings.refresh_ttl_seconds),
            (False, settings.session_ttl_seconds),
        )
    }


class IssuingService:
    """Opens sessions and mints access tokens; login, rotation and the flows to come (recovery,
    second factors, passkeys, providers) all end here."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        *,
        keyring: KeyringService,
        revocation: RevocationService,
        audit: AuditTrail,
        user_cache: BoundedTtlCache[str, UserRecord],
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._keyring = keyring
        self._revocation = revocation
        self._audit = audit
        self._user_cache = user_cache
        self._issuer = settings.effective_issuer
        self._lifetimes_by_remember_me = session_lifetimes(settings)

    def open_session(
        self,
        user: UserRecord,
        *,
        remember_me: bool,
        context: RequestContext,
        upgraded_hash: str | None = None,
        amr: tuple[str, ...] = (wire.AMR_PASSWORD,),
        auth_time: datetime | None = None,
    ) -> IssuedTokens:
        """Open a session for `user` (storing `upgraded_hash` in the same transaction) and
        issue its first tokens; the user's oldest sessions beyond the cap end.

        `amr` names how the user proved who they are (RFC 8176: a password `pwd`, a passkey
        `hwk`/`swk`, a provider `fed`, plus `otp` and `mfa` after a second factor);
        `auth_time` is when (default: now). Every access token of the session carries both.
        """
        now = self._clock.now()
        lifetimes = self._lifetimes(remember_me)
        session = Session(
            id=new_session_id(now),
            user_id=user.id,
            created_at=now,
            last_used_at=now,
            idle_expires_at=now + lifetimes.idle,
            absolute_expires_at=now + lifetimes.absolute,
            ended_at=None,
            remember_me=remember_me,
            user_agent=(context.user_agent or "")[:512] or None,
            ip=context.ip,
            client_id=context.client_id or wire.DEFAULT_CLIENT_ID,
            auth_time=auth_time or now,
            amr=amr,
        )
        refresh_token = new_refresh_token()
        with self._revocation.batch() as batch:
            connection = batch.connection
            if upgraded_hash is not None:
                user_store.set_password_hash(connection, user.id, upgraded_hash, now=now)
            session_store.insert_session(connection, session)
            refresh_token_store.insert_refresh_token(
                connection,
                session_id=session.id,
                token_hash=hash_refresh_token(refresh_token),
                now=now,
                expires_at=session.idle_expires_at,
            )
            self._audit.record(
                connection,
                "login_succeeded",
                user_id=user.id,
                session_id=session.id,
                context=context,
                detail={"amr": list(amr)},
            )
            self._end_sessions_over_limit(
                batch, user.id, opened=session.id, now=now, context=context
            )
        self._user_cache.put(user.id, user)
        return self.issue_tokens(
            user,
            session_id=session.id,
            client_id=session.client_id,
            refresh_token=refresh_token,
            remember_me=remember_me,
            amr=session.amr,
            auth_time=session.auth_time,
        )

    def _end_sessions_over_limit(
        self,
        batch: RevocationBatch,
        user_id: str,
        *,
        opened: str,
        now: datetime,
        context: RequestContext,
    ) -> None:
        """End the user's oldest live sessions beyond KEYTURN_MAX_SESSIONS_PER_USER.

        Every login stores a session, and correct logins are not counted by the lockout:
        without a cap, one account's password could fill the database (and every listing of
        its sessions) without bound. The ended sessions' access tokens stop too. The session
        just `opened` is never among them: logins in one millisecond would otherwise order it
        by the random part of its id, and could hand out tokens of a session already ended."""
        limit = self._settings.max_sessions_per_user
        over = session_store.live_session_ids_beyond(
            batch.connection, user_id, now=now, keep=limit, opened=opened
        )
        for revocation in batch.end_sessions(over, reason="session_limit"):
            self._audit.record(
                batch.connection,
                "session_evicted",
                user_id=user_id,
                session_id=revocation.subject,
                context=context,
                detail={"limit": limit},
            )

    def _lifetimes(self, remember_me: bool) -> SessionLifetimes:
        return self._lifetimes_by_remember_me[remember_me]

    def issue_tokens(
        self,
        user: UserRecord,
        *,
        session_id: str,
        client_id: str,
        refresh_token: str,
        remember_me: bool,
        amr: tuple[str, ...],
        auth_time: datetime,
    ) -> IssuedTokens:
        """Mint an access token for this session (carrying its login's `amr` and
        `auth_time`) and pair it with `refresh_token` (empty when only the access token is
        renewed)."""
        now = self._clock.now()
        ttl = self._settings.access_ttl_seconds
        # Spread expiries a little so a crowd of clients does not refresh in the same second.
        # Not a secret, so not os.urandom: a system call per request, and a trip through
        # the GIL for the worker thread.
        jitter = self._settings.access_ttl_jitter * random.random()  # noqa: S311
        lifetime = timedelta(seconds=max(1, round(ttl * (1 - jitter))))
        access_token, claims = mint_access_token(
            key=self._keyring.signing_key(),
            issuer=self._issuer,
            audience=self._settings.audience,
            subject=user.id,
            session_id=session_id,
            roles=user.roles,
            client_id=client_id,
            now=now,
            lifetime=lifetime,
            amr=amr,
            auth_time=auth_time,
        )
        return IssuedTokens(
            access_token=access_token,
            refresh_token=refresh_token,
            expires_in=int(lifetime.total_seconds()),
            claims=claims,
            user=user,
            remember_me=remember_me,
        )
