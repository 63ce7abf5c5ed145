"""Logging in with a passkey (a WebAuthn assertion, verified by py_webauthn): password-less
with a discoverable credential, and the check a second login step makes for a given account.

Every way an assertion can be wrong (unknown credential, another origin, an unknown or used
challenge, a bad signature, a malformed credential) answers the same 401, counts on the
caller's address like a failed password, and is audited with its reason.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from webauthn import generate_authentication_options, options_to_json
from webauthn import verify_authentication_response as verify_assertion
from webauthn.helpers import bytes_to_base64url, parse_authentication_credential_json
from webauthn.helpers.structs import AuthenticationCredential, UserVerificationRequirement

from keyturn import errors, wire
from keyturn.clock import Clock
from keyturn.config import Settings
from keyturn.core.context import NO_CONTEXT, RequestContext
from keyturn.core.passkeys import ChallengePurpose, CounterVerdict, Passkey, judge_sign_count
from keyturn.core.passkeys import passkey_amr as passkey_amr
from keyturn.ratelimit.limits import login_address_key
from keyturn.ratelimit.protocol import RateLimiter
from keyturn.services.audit import AuditTrail
from keyturn.services.issuing import IssuedTokens, IssuingService
from keyturn.services.mfa import MfaService
from keyturn.services.passkeys import ParseFailure, RelyingParty, descriptor_of
from keyturn.storage import passkeys as passkey_store
from keyturn.storage import users as user_store
from keyturn.storage.db import Database


class _Refused(Exception):
    """An assertion refused for `reason` (audited; the caller sees invalid_credential)."""

    def __init__(self, reason: str, passkey: Passkey | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.passkey = passkey


class PasskeyLoginService:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        clock: Clock,
        *,
        relying_party: RelyingParty,
        limiter: RateLimiter,
        audit: AuditTrail,
        issuing: IssuingService,
        mfa: MfaService,
    ) -> None:
        self._settings = settings
        self._database = database
        self._clock = clock
        self._rp = relying_party
        self._limiter = limiter
        self._audit = audit
        self._open_session = issuing.open_session
        self._mfa = mfa
        self._window = timedelta(seconds=settings.login_window_seconds)

    # Password-less.

    def login_options(self, *, mfa_token: str | None = None) -> str:
        """WebAuthn request options (JSON). Without `mfa_token`, for a password-less login: no
        allowCredentials, so the browser offers the passkeys it holds for this site; user
        verification required. With it, for the second step of that login: the account's own
        passkeys. Raises InvalidMfaTokenError for an unknown, used or expired `mfa_token`."""
        if mfa_token is not None:
            return self.options_for_user(self._mfa.pending_user(mfa_token).id)
        challenge = self._rp.issue_challenge(ChallengePurpose.LOGIN, user_id=None)
        return self._request_options(challenge, allow=[])

    def login(
        self,
        credential: dict[str, Any],
        *,
        mfa_token: str | None = None,
        remember_me: bool = True,
        context: RequestContext = NO_CONTEXT,
    ) -> IssuedTokens:
        """Verify a password-less assertion and open a session for the passkey's owner; with
        `mfa_token`, finish that login with one of its account's passkeys instead.

        Raises TooManyRequestsError past the per-address login limit, InvalidCredentialError
        (with `mfa_token`, also counted against its tries), AccountDisabledError,
        EmailNotVerifiedError (KEYTURN_REQUIRE_VERIFIED_EMAIL), InvalidMfaTokenError.
        """
        if mfa_token is not None:
            return self._finish_second_step(mfa_token, credential, context=context)
        passkey = self._checked(credential, user_id=None, context=context)
        with self._database.snapshot() as connection:
            user = user_store.find_user_by_id(connection, passkey.user_id)
        if user is None:  # deleted since the check: its passkeys went with it
            raise errors.InvalidCredentialError()
        if user.is_disabled or (self._settings.require_verified_email and not user.email_verified):
            reason = wire.ACCOUNT_DISABLED if user.is_disabled else wire.EMAIL_NOT_VERIFIED
            self._record("login_failed", user_id=user.id, context=context, reason=reason)
            if user.is_disabled:
                raise errors.AccountDisabledError()
            raise errors.EmailNotVerifiedError()
        return self._open_session(
            user,
            remember_me=remember_me,
            context=context,
            upgraded_hash=None,
            amr=passkey_amr(passkey),
        )

    def _finish_second_step(
        self, mfa_token: str, credential: dict[str, Any], *, context: RequestContext
    ) -> IssuedTokens:
        user = self._mfa.pending_user(mfa_token)
        try:
            passkey = self.verify_assertion_for_user(user.id, credential, context=context)
        except errors.InvalidCredentialError:
            self._mfa.count_failure(mfa_token)
            raise
        return self._mfa.complete_second_step(
            mfa_token, method_amr=passkey_amr(passkey), context=context
        )

    # A second factor: the MFA step calls these with the account its mfa_token names.

    def options_for_user(self, user_id: str) -> str:
        """WebAuthn request options (JSON) listing the account's own passkeys; the challenge
        is bound to the account, so it serves no password-less login nor anyone else."""
        with self._database.snapshot() as connection:
            passkeys = passkey_store.list_passkeys(connection, user_id)
        challenge = self._rp.issue_challenge(ChallengePurpose.LOGIN, user_id=user_id)
        return self._request_options(challenge, allow=passkeys)

    def verify_assertion_for_user(
        self, user_id: str, credential: dict[str, Any], *, context: RequestContext = NO_CONTEXT
    ) -> Passkey:
        """Verify an assertion answering `options_for_user(user_id)` with one of that
        account's passkeys, and return the passkey. Raises InvalidCredentialError,
        TooManyRequestsError."""
        return self._checked(credential, user_id=user_id, context=context)

    # Shared steps.

    def _request_options(self, challenge: bytes, *, allow: list[Passkey]) -> str:
        options = generate_authentication_options(
            rp_id=self._rp.rp_id,
            challenge=challenge,
            timeout=self._rp.timeout_ms,
            allow_credentials=[descriptor_of(passkey) for passkey in allow],
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        return options_to_json(options)

    def _checked(
        self, credential: dict[str, Any], *, user_id: str | None, context: RequestContext
    ) -> Passkey:
        """The verified passkey behind an assertion, under the per-address failure limit."""
        address = login_address_key(context.ip) if context.ip else None
        if address is not None:
            wait = self._limiter.reserve(
                address, limit=self._settings.login_max_failures_per_ip, window=self._window
            )
            if wait is not None:
                self._record("login_locked", user_id=user_id, context=context, reason="passkey")
                raise errors.TooManyRequestsError(
                    f"Too many failed attempts; try again in {wait} seconds.",
                    retry_after_seconds=wait,
                )
        try:
            passkey = self._verify(credential, user_id=user_id, context=context)
        except _Refused as refused:  # the reserved count stays: it is this failure
            owner = refused.passkey.user_id if refused.passkey else user_id
            event = "passkey_counter_regressed" if refused.reason == "counter" else None
            self._record(
                event or "passkey_login_failed",
                user_id=owner,
                context=context,
                reason=refused.reason,
                passkey_id=refused.passkey.id if refused.passkey else None,
            )
            raise errors.InvalidCredentialError() from refused
        if address is not None:
            self._limiter.undo(address)
        return passkey

    def _verify(
        self, credential: dict[str, Any], *, user_id: str | None, context: RequestContext
    ) -> Passkey:
        try:
            parsed: AuthenticationCredential = parse_authentication_credential_json(credential)
        except ParseFailure as exc:
            raise _Refused("malformed") from exc
        try:
            challenge = self._rp.take_challenge(
                parsed.response.client_data_json,
                purpose=ChallengePurpose.LOGIN,
                user_id=user_id,
                error=errors.InvalidCredentialError,
            )
        except errors.InvalidCredentialError as exc:
            raise _Refused("challenge") from exc
        with self._database.snapshot() as connection:
            passkey = passkey_store.find_passkey_by_credential_id(
                connection, bytes_to_base64url(parsed.raw_id)
            )
        if passkey is None or (user_id is not None and passkey.user_id != user_id):
            raise _Refused("unknown_credential")
        # WebAuthn §7.2 step 6: a discoverable credential names its account; it must be the
        # passkey's (it is always sent for a credential the browser discovered).
        handle = parsed.response.user_handle
        if (handle is None and user_id is None) or (
            handle is not None and handle != passkey.user_id.encode()
        ):
            raise _Refused("user_handle", passkey)
        try:
            # Counter 0 here: the library would refuse a regression as it refuses a forgery,
            # and a regression behind a valid signature must be told apart (a cloned key).
            verified = verify_assertion(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=self._rp.rp_id,
                expected_origin=self._rp.origin,
                credential_public_key=passkey.public_key,
                credential_current_sign_count=0,
                require_user_verification=True,
            )
        except ParseFailure as exc:
            raise _Refused("signature", passkey) from exc
        if judge_sign_count(passkey.sign_count, verified.new_sign_count) is not (
            CounterVerdict.ACCEPT
        ):
            raise _Refused("counter", passkey)
        with self._database.transaction() as connection:
            if not passkey_store.record_passkey_use(
                connection,
                passkey.id,
                seen_sign_count=passkey.sign_count,
                sign_count=verified.new_sign_count,
                backed_up=verified.credential_backed_up,
                now=self._clock.now(),
            ):
                raise _Refused("counter", passkey)  # another assertion took this count first
            self._audit.record(
                connection,
                "passkey_used",
                user_id=passkey.user_id,
                context=context,
                detail={"passkey_id": passkey.id},
            )
        return passkey

    def _record(
        self,
        event: str,
        *,
        user_id: str | None,
        context: RequestContext,
        reason: str,
        passkey_id: str | None = None,
    ) -> None:
        detail: dict[str, Any] = {"reason": reason}
        if passkey_id is not None:
            detail["passkey_id"] = passkey_id
        with self._database.transaction() as connection:
            self._audit.record(connection, event, user_id=user_id, context=context, detail=detail)
