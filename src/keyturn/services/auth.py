"""Logging in, refreshing with rotation and theft detection, checking access tokens, logging out."""

from __future__ import annotations

import functools
import random
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

from keyturn import errors, wire
from keyturn.clock import Clock
from keyturn.config import Settings
from keyturn.core.passwords import PasswordHashing
from keyturn.core.refresh import (
    RefreshVerdict,
    hash_refresh_token,
    is_refresh_token_shaped,
    judge_refresh,
    new_refresh_token,
    open_successor,
    seal_successor,
)
from keyturn.core.sessions import (
    Session,
    SessionLifetimes,
    SessionState,
    new_session_id,
    next_idle_expiry,
    session_state,
)
from keyturn.core.tokens import (
    AccessClaims,
    UnknownKeyError,
    VerifiedTokenCache,
    mint_access_token,
    verify_access_token,
)
from keyturn.observability import metrics
from keyturn.services.accounts import check_password
from keyturn.services.audit import AuditTrail
from keyturn.services.context import NO_CONTEXT, RequestContext
from keyturn.services.keyring import KeyringService
from keyturn.services.limits import (
    KNOWN_ADDRESS_AGE,
    ClientLimits,
    address_key,
    known_address_account_key,
    login_account_key,
    login_address_key,
)
from keyturn.services.revocation import RevocationBatch, RevocationService
from keyturn.state.memory import BoundedTtlCache
from keyturn.state.protocols import RateLimiter
from keyturn.storage import audit as audit_store
from keyturn.storage import sessions as session_store
from keyturn.storage import users as user_store
from keyturn.storage.db import Database
from keyturn.storage.group_commit import GroupCommit
from keyturn.storage.users import UserRecord


@dataclass(frozen=True, slots=True)
class _PreparedRotation:
    """A refresh before its transaction: the presented token and its would-be successor."""

    refresh_token: str
    token_hash: str
    context: RequestContext
    now: datetime
    next_token: str
    next_token_hash: str
    sealed_next: bytes


@dataclass(frozen=True, slots=True)
class _Rotation:
    """What a refresh's transaction found: the successor to hand out, and for whom."""

    successor: str
    session: Session
    user: UserRecord
    repeated: bool


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


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int
    claims: AccessClaims
    user: UserRecord
    remember_me: bool


class AuthService:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        clock: Clock,
        *,
        keyring: KeyringService,
        hashing: PasswordHashing,
        limiter: RateLimiter,
        revocation: RevocationService,
        audit: AuditTrail,
        user_cache: BoundedTtlCache[str, UserRecord],
        client_limits: ClientLimits | None = None,
    ) -> None:
        self._settings = settings
        self._client_limits = client_limits
        self._database = database
        self._clock = clock
        self._keyring = keyring
        self._hashing = hashing
        self._limiter = limiter
        self._revocation = revocation
        self._audit = audit
        self._user_cache = user_cache
        self._token_cache = VerifiedTokenCache(settings.token_cache_size)
        self._issuer = settings.effective_issuer
        self._grace = timedelta(seconds=settings.refresh_reuse_grace_seconds)
        self._refresh_group: GroupCommit[RevocationBatch] = GroupCommit(revocation.batch)
        self._login_window = timedelta(seconds=settings.login_window_seconds)
        absolute = settings.session_max_age_seconds
        self._lifetimes_by_remember_me = {
            remember_me: SessionLifetimes(
                idle=timedelta(seconds=min(idle, absolute)), absolute=timedelta(seconds=absolute)
            )
            for remember_me, idle in (
                (True, settings.refresh_ttl_seconds),
                (False, settings.session_ttl_seconds),
            )
        }
        # Unknown accounts are checked against this hash so they cost what known ones do.
        self._dummy_hash = hashing.hash_password(secrets.token_urlsafe(16))
        self.key_reload_wanted = False

    def forget_key(self, kid: str) -> None:
        """A signing key was revoked: refuse its tokens from now on, cached ones included."""
        self._keyring.forget(kid)
        self._token_cache.clear()
        self.key_reload_wanted = True  # its replacement, if any, is in storage

    # Access tokens: the check every protected request runs.

    def authenticate(self, access_token: str) -> AccessClaims:
        """The claims of a valid, unrevoked access token. No I/O.

        Raises TokenExpiredError, InvalidTokenError, or ServiceUnavailableError when the
        revocation list cannot be trusted.
        """
        self._revocation.ensure_fresh()
        now = self._clock.timestamp()
        claims = self._token_cache.get(access_token, now=now)
        if claims is None:
            try:
                ring = self._keyring.ring
                claims = verify_access_token(
                    access_token,
                    keyring=ring,
                    issuer=self._issuer,
                    audience=self._settings.audience,
                    now=now,
                    max_lifetime_seconds=self._settings.access_ttl_seconds,
                )
            except UnknownKeyError:
                self.key_reload_wanted = True  # the upkeep loop reloads keys soon
                raise
            key = ring.find(claims.key_id)
            self._token_cache.put(
                access_token, claims, trusted_until=key.trusted_until if key else now
            )
        if self._revocation.revocations.is_revoked(claims.session_id, claims.token_id):
            raise errors.InvalidTokenError("The session of this access token has ended.")
        return claims

    def cached_user(self, user_id: str) -> UserRecord | None:
        return self._user_cache.get(user_id)

    def load_user(self, user_id: str) -> UserRecord:
        """The user behind a verified token; raises InvalidTokenError for a gone or disabled one."""
        with self._database.snapshot() as connection:
            user = user_store.find_user_by_id(connection, user_id)
        if user is None or user.is_disabled:
            raise errors.InvalidTokenError("The account of this access token is not active.")
        self._user_cache.put(user_id, user)
        return user

    # Login.

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
        InvalidCredentialsError (the same for unknown accounts), AccountDisabledError.
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
        if self._settings.require_verified_email and not user.email_verified:
            self._record_event(
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
        return self._open_session(
            user, remember_me=remember_me, context=context, upgraded_hash=upgraded_hash
        )

    def _reserve_attempt(
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

    def _count_failure(self, reserved: _Reserved, context: RequestContext) -> None:
        """A failure from an address the account knows also uses up that address's own
        allowance (the reservations already count it everywhere else)."""
        if reserved.own_allowance is not None and self._is_known_address(reserved.user_id, context):
            self._limiter.hit(
                reserved.own_allowance,
                limit=self._settings.login_max_failures,
                window=self._login_window,
            )

    def _release_attempt(self, reserved: _Reserved) -> None:
        """The attempt succeeded: the address gets its count back, the account (or the
        address's own allowance for it) starts over."""
        if reserved.address is not None:
            self._limiter.undo(reserved.address)
        self._limiter.reset(reserved.account)

    def _refuse_attempt(
        self, wait: int, *, event: str, user: UserRecord | None, context: RequestContext
    ) -> NoReturn:
        self._record_event(event, user_id=user.id if user else None, context=context)
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

    def _open_session(
        self,
        user: UserRecord,
        *,
        remember_me: bool,
        context: RequestContext,
        upgraded_hash: str | None,
    ) -> IssuedTokens:
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
        )
        refresh_token = new_refresh_token()
        with self._revocation.batch() as batch:
            connection = batch.connection
            if upgraded_hash is not None:
                user_store.set_password_hash(connection, user.id, upgraded_hash, now=now)
            session_store.insert_session(connection, session)
            session_store.insert_refresh_token(
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
            )
            self._end_sessions_over_limit(batch, user.id, now=now, context=context)
        self._user_cache.put(user.id, user)
        return self._issue(
            user,
            session_id=session.id,
            client_id=session.client_id,
            refresh_token=refresh_token,
            remember_me=remember_me,
        )

    def _end_sessions_over_limit(
        self, batch: RevocationBatch, user_id: str, *, now: datetime, context: RequestContext
    ) -> None:
        """End the user's oldest live sessions beyond KEYTURN_MAX_SESSIONS_PER_USER.

        Every login stores a session, and correct logins are not counted by the lockout:
        without a cap, one account's password could fill the database (and every listing of
        its sessions) without bound. The ended sessions' access tokens stop too."""
        limit = self._settings.max_sessions_per_user
        over = session_store.live_session_ids_beyond(batch.connection, user_id, now=now, keep=limit)
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

    def _issue(
        self,
        user: UserRecord,
        *,
        session_id: str,
        client_id: str,
        refresh_token: str,
        remember_me: bool,
    ) -> IssuedTokens:
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
        )
        return IssuedTokens(
            access_token=access_token,
            refresh_token=refresh_token,
            expires_in=int(lifetime.total_seconds()),
            claims=claims,
            user=user,
            remember_me=remember_me,
        )

    # Refresh.

    def refresh(self, refresh_token: str, *, context: RequestContext = NO_CONTEXT) -> IssuedTokens:
        """Rotate a refresh token.

        Within the grace window a rotated token gets the same successor again (concurrent
        tabs, retries); after it, the whole session ends. Raises InvalidRefreshTokenError,
        RefreshTokenExpiredError, RefreshTokenReusedError (after committing the revocation),
        TooManyRequestsError past KEYTURN_REFRESH_MAX_PER_IP.
        """
        prepared = self._prepare_rotation(refresh_token, context)
        with self._revocation.batch() as batch:
            outcome = self._rotate(batch, prepared)
        return self._issue_rotated(outcome)

    async def refresh_in_group(
        self, refresh_token: str, *, context: RequestContext = NO_CONTEXT
    ) -> IssuedTokens:
        """refresh(), from the event loop: refreshes that arrive together share one
        transaction and one commit (see storage/group_commit.py). Raises as refresh()."""
        prepared = self._prepare_rotation(refresh_token, context)
        outcome = await self._refresh_group.run(functools.partial(self._rotate, prepared=prepared))
        return self._issue_rotated(outcome)

    def _prepare_rotation(self, refresh_token: str, context: RequestContext) -> _PreparedRotation:
        # Everything that needs no database happens here, before the transaction: a refused
        # token costs no trip to the writer thread, and on SQLite the transaction holds the
        # write lock, so randomness and key derivation inside it would make every other
        # refresh wait longer.
        if self._client_limits is not None:
            self._client_limits.count_refresh(context)
        if not is_refresh_token_shaped(refresh_token):
            raise errors.InvalidRefreshTokenError()
        next_token = new_refresh_token()
        return _PreparedRotation(
            refresh_token=refresh_token,
            token_hash=hash_refresh_token(refresh_token),
            context=context,
            now=self._clock.now(),
            next_token=next_token,
            next_token_hash=hash_refresh_token(next_token),
            sealed_next=seal_successor(refresh_token, next_token),
        )

    def _rotate(
        self, batch: RevocationBatch, prepared: _PreparedRotation
    ) -> _Rotation | errors.KeyturnError:
        """The transaction of a refresh: a refusal is returned, so that what the transaction
        wrote before it (ending a session on reuse) is committed, not rolled back."""
        connection = batch.connection
        now = prepared.now
        found = session_store.find_refresh_token_with_user(connection, prepared.token_hash)
        if found is None:
            return errors.InvalidRefreshTokenError()
        stored, session, user = found
        state = session_state(session, now=now)
        if state is SessionState.ENDED:
            return errors.InvalidRefreshTokenError("The session of this refresh token has ended.")
        if state is SessionState.EXPIRED:
            return errors.RefreshTokenExpiredError()
        if user is None or user.is_disabled:
            return errors.InvalidRefreshTokenError("The account is not active.")
        successor: str | None = None
        verdict = judge_refresh(stored, now=now, grace=self._grace)
        if verdict is RefreshVerdict.ROTATE:
            successor = prepared.next_token
            idle_expires_at = next_idle_expiry(
                now=now,
                idle=self._lifetimes(session.remember_me).idle,
                absolute_expires_at=session.absolute_expires_at,
            )
            if not session_store.rotate_refresh_token(
                connection,
                stored.id,
                session_id=session.id,
                now=now,
                sealed_successor=prepared.sealed_next,
                successor_token_hash=prepared.next_token_hash,
                idle_expires_at=idle_expires_at,
            ):  # a concurrent request rotated it first; judge what it left behind
                stored = session_store.refetch_refresh_token(connection, stored.id)
                verdict = judge_refresh(stored, now=now, grace=self._grace)
                successor = None
        if verdict is RefreshVerdict.WITHIN_GRACE and stored.sealed_successor is not None:
            successor = open_successor(prepared.refresh_token, stored.sealed_successor)
        if verdict is RefreshVerdict.EXPIRED:
            return errors.RefreshTokenExpiredError()
        if verdict is RefreshVerdict.REUSED or successor is None:
            batch.end_sessions([session.id], reason="refresh_token_reused")
            self._audit.record(
                connection,
                "refresh_token_reused",
                user_id=user.id,
                session_id=session.id,
                context=prepared.context,
            )
            return errors.RefreshTokenReusedError()
        return _Rotation(
            successor=successor,
            session=session,
            user=user,
            repeated=verdict is RefreshVerdict.WITHIN_GRACE,
        )

    def _issue_rotated(self, outcome: _Rotation | errors.KeyturnError) -> IssuedTokens:
        # Out of the transaction: a revocation it made is committed (and published) by now.
        if isinstance(outcome, errors.KeyturnError):
            raise outcome
        metrics.count_refresh(repeated=outcome.repeated)
        return self._issue(
            outcome.user,
            session_id=outcome.session.id,
            client_id=outcome.session.client_id,
            refresh_token=outcome.successor,
            remember_me=outcome.session.remember_me,
        )

    # Logout and sessions.

    def session_of_refresh_token(self, refresh_token: str) -> Session | None:
        if not is_refresh_token_shaped(refresh_token):
            return None
        with self._database.snapshot() as connection:
            found = session_store.find_refresh_token(connection, hash_refresh_token(refresh_token))
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
        user = self.load_user(claims.subject)
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
            claims = self.authenticate(token)
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

    def _record_event(
        self,
        event: str,
        *,
        user_id: str | None = None,
        context: RequestContext,
        detail: dict[str, str] | None = None,
    ) -> None:
        with self._database.transaction() as connection:
            self._audit.record(connection, event, user_id=user_id, context=context, detail=detail)
