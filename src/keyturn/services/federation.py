"""Sign in with a provider: start (to the provider, with state, nonce and PKCE in a signed
cookie), and complete (check the callback, have services.providers verify the provider's answer,
find or create the user by services.provider_accounts, open a session).

Every refusal of a callback is a redirect to /login?error=CODE (/dashboard?error=CODE while
linking), counted and audited, never an error page: the user is in the middle of a navigation.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote, urlencode

from anyio import to_thread

from keyturn import errors, wire
from keyturn.clock import Clock
from keyturn.config import Settings
from keyturn.config.providers import IdentityProvider
from keyturn.core.context import RequestContext
from keyturn.core.federation import (
    DEFAULT_RETURN_TO,
    AccessDeniedError,
    FederationError,
    FlowState,
    InvalidStateError,
    ProviderError,
    checked_return_to,
    read_flow_state,
    sign_flow_state,
    state_digest,
)
from keyturn.core.sealing import Sealer
from keyturn.core.sessions import UserRecord
from keyturn.observability import metrics
from keyturn.ratelimit.protocol import RateLimiter
from keyturn.services.audit import AuditTrail
from keyturn.services.issuing import IssuedTokens, IssuingService
from keyturn.services.mfa import MfaRequired, MfaService
from keyturn.services.provider_accounts import ProviderAccounts
from keyturn.services.providers import ProviderClient, ProviderIdentity, client_for
from keyturn.storage.db import Database
from keyturn.storage.secrets import get_or_create_secret

logger = logging.getLogger("keyturn.federation")
STATE_SECRET_NAME = "oidc-state"  # noqa: S105 - the name of a row, not the secret
FLOW_LIFETIME = timedelta(minutes=10)
_USED_STATE_PREFIX = "oidc-state-used:"


@dataclass(frozen=True, slots=True)
class Started:
    """Where to send the browser, and the state cookie to set (None when it goes nowhere)."""

    location: str
    state_cookie: str | None


@dataclass(frozen=True, slots=True)
class Completed:
    """Where the callback sends the browser; `issued` when a session was opened."""

    location: str
    issued: IssuedTokens | None = None


class FederationService:
    """Sign-in through the configured providers; call `load_key()` once at start."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        clock: Clock,
        *,
        sealer: Sealer,
        limiter: RateLimiter,
        audit: AuditTrail,
        issuing: IssuingService,
        mfa: MfaService,
    ) -> None:
        self._settings = settings
        self._database = database
        self._clock = clock
        self._sealer = sealer
        self._limiter = limiter
        self._audit = audit
        self._issuing = issuing
        self._mfa = mfa
        self._key: bytes | None = None
        self._accounts = ProviderAccounts(database, clock, audit=audit)
        self.providers: dict[str, IdentityProvider] = {
            provider.id: provider for provider in settings.identity_providers
        }
        self._clients: dict[str, ProviderClient] = {
            provider.id: client_for(provider, settings, clock)
            for provider in self.providers.values()
        }
        self._origin = settings.mail_origin

    def load_key(self) -> None:
        """Read the shared key that signs state cookies (creating it on first start)."""
        with self._database.transaction() as connection:
            self._key = get_or_create_secret(
                connection, STATE_SECRET_NAME, now=self._clock.now(), sealer=self._sealer
            )

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()

    def callback_url(self, provider_id: str) -> str:
        return f"{self._origin}/api/auth/oidc/{provider_id}/callback"

    def _provider(self, provider_id: str) -> IdentityProvider:
        provider = self.providers.get(provider_id)
        if provider is None:
            raise errors.ProviderNotFoundError()
        return provider

    def _signing_key(self) -> bytes:
        if self._key is None:
            raise RuntimeError("FederationService.load_key() was not called")
        return self._key

    async def start(
        self, provider_id: str, *, return_to: str | None, link_user_id: str | None = None
    ) -> Started:
        """The provider's authorization URL and the signed cookie holding this sign-in's
        state, nonce and PKCE verifier (and the linking user, when one links).

        Raises ProviderNotFoundError, InvalidReturnToError. A provider that cannot be reached
        sends the browser back with `provider_unavailable`.
        """
        provider = self._provider(provider_id)
        target = checked_return_to(return_to)
        flow = FlowState(
            provider=provider.id,
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            code_verifier=secrets.token_urlsafe(48),  # 64 characters: RFC 7636 §4.1
            return_to=target,
            expires_at=int(self._clock.timestamp() + FLOW_LIFETIME.total_seconds()),
            link_user_id=link_user_id,
        )
        try:
            location = await self._clients[provider.id].authorization_url(
                redirect_uri=self.callback_url(provider.id),
                state=flow.state,
                nonce=flow.nonce,
                code_verifier=flow.code_verifier,
            )
        except FederationError as error:
            self._count(provider.id, error.code, linking=link_user_id is not None)
            logger.warning("provider %s: %s", provider.id, error.message, exc_info=error)
            return Started(_refused_location(error.code, linking=link_user_id is not None), None)
        return Started(location, sign_flow_state(flow, key=self._signing_key()))

    async def complete(
        self,
        provider_id: str,
        *,
        params: Mapping[str, str],
        state_cookie: str | None,
        context: RequestContext,
    ) -> Completed:
        """Finish the sign-in the provider sends the browser back from: where to go next,
        and the session opened, if any. Never raises for what the callback carries."""
        flow = read_flow_state(state_cookie, key=self._signing_key(), now=self._clock.timestamp())
        linking = flow is not None and flow.link_user_id is not None
        try:
            # The single-use mark is a write (database or Redis): off the event loop.
            flow = await to_thread.run_sync(
                self._check_state, provider_id, flow, params.get("state")
            )
            provider = self._provider(provider_id)
            error = params.get("error")
            if error == "access_denied":
                raise AccessDeniedError()
            if error is not None:
                raise ProviderError(f"The provider answered {error[:64]!r}.")
            # RFC 9207: a provider that names itself in the answer must name itself.
            issuer = params.get("iss")
            if issuer is not None and provider.issuer is not None and issuer != provider.issuer:
                raise InvalidStateError("The answer comes from another issuer.")
            code = params.get("code")
            if not code or len(code) > 2048:
                raise ProviderError("The provider sent no code.")
            identity = await self._clients[provider.id].identity_of(
                code=code,
                redirect_uri=self.callback_url(provider.id),
                code_verifier=flow.code_verifier,
                nonce=flow.nonce,
            )
            completed = await to_thread.run_sync(self._settle, provider, identity, flow, context)
        except errors.KeyturnError as error:
            # The reason is for the operator; the browser gets the code only. The cause (a
            # library's exception) says which check failed and carries no token.
            logger.info(
                "provider sign-in refused: %s (%s; %r)",
                error.code,
                error.message,
                error.__cause__,
                extra={"provider": provider_id[:64]},
            )
            self._count(provider_id, error.code, linking=linking)
            self._record_refusal(provider_id, error, context)
            return Completed(_refused_location(error.code, linking=linking))
        self._count(provider_id, "linked" if linking else "ok", linking=linking)
        return completed

    def _check_state(
        self, provider_id: str, flow: FlowState | None, state: str | None
    ) -> FlowState:
        """The sign-in this browser started, once: the state in the URL must be the one in
        this browser's cookie (login CSRF: an attacker's callback URL does not carry it), for
        this provider, and never used before (a replayed callback)."""
        if flow is None or state is None or flow.provider != provider_id:
            raise InvalidStateError()
        if not secrets.compare_digest(flow.state.encode(), state.encode("utf-8", "replace")):
            raise InvalidStateError()
        # Single use across every instance: the shared limiter lets the first one through.
        used = self._limiter.reserve(
            _USED_STATE_PREFIX + state_digest(flow.state), limit=1, window=FLOW_LIFETIME
        )
        if used is not None:
            raise InvalidStateError("This sign-in was completed already.")
        return flow

    def _settle(
        self,
        provider: IdentityProvider,
        identity: ProviderIdentity,
        flow: FlowState,
        context: RequestContext,
    ) -> Completed:
        """Find, link or create the user; then (unless linking) open the session."""
        user = self._accounts.find_or_create(
            provider, identity, link_user_id=flow.link_user_id, context=context
        )
        if flow.link_user_id is not None:
            return Completed(flow.return_to)
        if self._settings.require_verified_email and not user.email_verified:
            raise errors.EmailNotVerifiedError()
        if user.mfa_enabled:
            waiting = self._mfa.begin_second_step(
                user, remember_me=True, context=context, first_amr=(wire.AMR_FEDERATED,)
            )
            return Completed(second_step_location(waiting))
        return Completed(flow.return_to, self._open_session_after_provider(user, context))

    def _open_session_after_provider(
        self, user: UserRecord, context: RequestContext
    ) -> IssuedTokens:
        """Open a Keyturn session for a user a provider vouched for; its tokens carry amr
        ["fed"] (RFC 8176)."""
        return self._issuing.open_session(
            user,
            remember_me=True,
            context=context,
            upgraded_hash=None,
            amr=(wire.AMR_FEDERATED,),
        )

    # Counting ------------------------------------------------------------------------------

    def _count(self, provider_id: str, outcome: str, *, linking: bool) -> None:
        metrics.count_provider_sign_in(
            provider_id if provider_id in self.providers else "unknown",
            outcome,
            linking=linking,
        )

    def _record_refusal(
        self, provider_id: str, error: errors.KeyturnError, context: RequestContext
    ) -> None:
        try:
            with self._database.transaction() as connection:
                self._audit.record(
                    connection,
                    "provider_sign_in_refused",
                    context=context,
                    detail={"provider": provider_id[:64], "reason": error.code},
                )
        except errors.KeyturnError:  # the database is out: the refusal stands without a trail
            logger.warning("provider sign-in refused (%s), not audited", error.code)


def _refused_location(code: str, *, linking: bool) -> str:
    page = "/dashboard" if linking else "/login"
    return f"{page}?error={quote(code)}"


__all__ = ["DEFAULT_RETURN_TO", "Completed", "FederationService", "Started"]


def second_step_location(waiting: MfaRequired) -> str:
    """The login page's second step for a provider sign-in of a user with a second factor.
    The mfa_token rides in the fragment: browsers send it neither to a server nor in a
    Referer, and the page wipes it from the address bar once read."""
    fragment = urlencode({"mfa_token": waiting.mfa_token, "methods": ",".join(waiting.methods)})
    return f"/login#{fragment}"
