"""Refresh-token rotation with theft detection, written by group commit (async only)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta

from keyturn import errors
from keyturn.clock import Clock
from keyturn.config import Settings
from keyturn.core.binding import binding_check
from keyturn.core.context import NO_CONTEXT, RequestContext
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
    UserRecord,
    next_idle_expiry,
    session_state,
)
from keyturn.observability import metrics
from keyturn.ratelimit.limits import ClientLimits
from keyturn.revocation.service import RevocationBatch, RevocationService
from keyturn.services.audit import AuditTrail
from keyturn.services.issuing import IssuedTokens, IssuingService, session_lifetimes
from keyturn.services.lost_answers import LostAnswers
from keyturn.storage import refresh_tokens as refresh_token_store
from keyturn.storage.group_commit import GroupCommit


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


class RotationService:
    """Rotates refresh tokens; the only way a client renews its access token."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        *,
        revocation: RevocationService,
        audit: AuditTrail,
        issuing: IssuingService,
        client_limits: ClientLimits | None = None,
        lost_answers: LostAnswers | None = None,
    ) -> None:
        self._client_limits = client_limits
        self._binding = binding_check(settings.refresh_binding)
        self._lost_answers = lost_answers if lost_answers and lost_answers.enabled else None
        self._clock = clock
        self._audit = audit
        self._issue = issuing.issue_tokens
        self._grace = timedelta(seconds=settings.refresh_reuse_grace_seconds)
        self._refresh_group: GroupCommit[RevocationBatch] = GroupCommit(revocation.batch)
        self._lifetimes_by_remember_me = session_lifetimes(settings)

    async def rotate_refresh_token(
        self, refresh_token: str, *, context: RequestContext = NO_CONTEXT
    ) -> IssuedTokens:
        """Rotate a refresh token: a new access token and the token's successor.

        Within the grace window a rotated token gets the same successor again (concurrent
        tabs, retries); after it, the whole session ends. Refreshes that arrive together share
        one transaction and one commit (see storage/group_commit.py). Raises
        InvalidRefreshTokenError, RefreshTokenExpiredError, RefreshTokenReusedError (after
        committing the revocation), TooManyRequestsError past KEYTURN_REFRESH_MAX_PER_IP.
        """
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
        found = refresh_token_store.find_refresh_token_with_user(connection, prepared.token_hash)
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
        if self._binding is not None and not self._binding(session, prepared.context):
            return self._end_as_stolen(batch, prepared, session, user, "refresh_binding_mismatch")
        successor: str | None = None
        verdict = judge_refresh(stored, now=now, grace=self._grace)
        if verdict is RefreshVerdict.ROTATE:
            successor = prepared.next_token
            idle_expires_at = next_idle_expiry(
                now=now,
                idle=self._lifetimes(session.remember_me).idle,
                absolute_expires_at=session.absolute_expires_at,
            )
            if not refresh_token_store.rotate_refresh_token(
                connection,
                stored.id,
                session_id=session.id,
                now=now,
                sealed_successor=prepared.sealed_next,
                successor_token_hash=prepared.next_token_hash,
                idle_expires_at=idle_expires_at,
            ):  # a concurrent request rotated it first; judge what it left behind
                stored = refresh_token_store.refetch_refresh_token(connection, stored.id)
                verdict = judge_refresh(stored, now=now, grace=self._grace)
                successor = None
        if verdict is RefreshVerdict.WITHIN_GRACE and stored.sealed_successor is not None:
            successor = open_successor(prepared.refresh_token, stored.sealed_successor)
        if verdict is RefreshVerdict.EXPIRED:
            return errors.RefreshTokenExpiredError()
        if verdict is RefreshVerdict.REUSED and self._lost_answers is not None:
            successor = self._lost_answers.successor_to_resend(
                connection, stored, prepared.refresh_token, now=now
            )
        if successor is None:
            return self._end_as_stolen(batch, prepared, session, user, "refresh_token_reused")
        return _Rotation(
            successor=successor,
            session=session,
            user=user,
            repeated=verdict is not RefreshVerdict.ROTATE,
        )

    def _end_as_stolen(
        self,
        batch: RevocationBatch,
        prepared: _PreparedRotation,
        session: Session,
        user: UserRecord,
        event: str,
    ) -> errors.KeyturnError:
        """End the whole session (a stolen token's holder keeps nothing) and say why."""
        batch.end_sessions([session.id], reason=event)
        self._audit.record(
            batch.connection,
            event,
            user_id=user.id,
            session_id=session.id,
            context=prepared.context,
        )
        if event == "refresh_token_reused":
            return errors.RefreshTokenReusedError()
        return errors.InvalidRefreshTokenError(
            "The session has ended: this refresh came from another device or network than"
            " the session was opened from."
        )

    def _lifetimes(self, remember_me: bool) -> SessionLifetimes:
        return self._lifetimes_by_remember_me[remember_me]

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
            amr=outcome.session.amr,
            auth_time=outcome.session.auth_time,
        )
