"""Managing second factors: setting up an authenticator app (TOTP) with its recovery codes,
turning it off, new recovery codes, and an admin removing every factor of a user."""

from __future__ import annotations

from dataclasses import dataclass

import segno
from sqlalchemy.engine import Connection

from keyturn import errors
from keyturn.clock import Clock
from keyturn.core.context import NO_CONTEXT, RequestContext
from keyturn.core.sealing import Sealer
from keyturn.core.second_factors import (
    hash_recovery_code,
    matching_step,
    new_recovery_codes,
    new_totp_secret,
    normalize_recovery_code,
    provisioning_uri,
)
from keyturn.core.sessions import UserRecord
from keyturn.revocation.service import RevocationService
from keyturn.services.audit import AuditTrail
from keyturn.storage import factors as factor_store
from keyturn.storage import users as user_store
from keyturn.storage.db import Database

# The name authenticator apps show above the account.
TOTP_ISSUER = "Keyturn"


@dataclass(frozen=True, slots=True)
class TotpSetup:
    secret: str
    otpauth_uri: str
    qr_svg: str


class FactorService:
    """Every change of a user's second factors; each keeps users.mfa_enabled in step and
    makes the caches of that user stale everywhere."""

    def __init__(
        self,
        database: Database,
        clock: Clock,
        *,
        sealer: Sealer,
        revocation: RevocationService,
        audit: AuditTrail,
    ) -> None:
        self._database = database
        self._clock = clock
        self._sealer = sealer
        self._revocation = revocation
        self._audit = audit

    def setup_totp(self, user: UserRecord, *, context: RequestContext = NO_CONTEXT) -> TotpSetup:
        """A new secret for an authenticator app, not active until confirmed; it replaces
        an unconfirmed one. Raises MfaAlreadyEnabledError when an app is active."""
        secret = new_totp_secret()
        with self._database.transaction() as connection:
            stored = factor_store.replace_pending_totp(
                connection,
                user.id,
                sealed_secret=self._sealer.seal(secret.encode("ascii")),
                now=self._clock.now(),
            )
            if not stored:
                raise errors.MfaAlreadyEnabledError()
            self._audit.record(connection, "totp_setup_started", user_id=user.id, context=context)
        uri = provisioning_uri(secret, account=user.email, issuer=TOTP_ISSUER)
        qr_svg = segno.make(uri, error="m").svg_inline(
            scale=1, dark="#111", light="#fff", omitsize=True
        )
        return TotpSetup(secret=secret, otpauth_uri=uri, qr_svg=qr_svg)

    def confirm_totp(
        self, user: UserRecord, code: str, *, context: RequestContext = NO_CONTEXT
    ) -> list[str]:
        """Activate the pending app with a code it shows; returns ten new recovery codes
        (shown this once: only their digests are kept). Raises InvalidConfirmationCodeError,
        MfaAlreadyEnabledError, MfaNotEnabledError when no setup is pending."""
        codes = new_recovery_codes()
        with self._revocation.batch() as batch:
            connection = batch.connection
            stored = factor_store.find_totp(connection, user.id)
            if stored is None:
                raise errors.MfaNotEnabledError("Start the setup first.")
            if stored.is_active:
                raise errors.MfaAlreadyEnabledError()
            secret = self._sealer.unseal(stored.sealed_secret).decode("ascii")
            step = matching_step(secret, code, now=self._clock.timestamp(), after_step=None)
            if step is None or not factor_store.confirm_totp(
                connection, user.id, step=step, now=self._clock.now()
            ):
                raise errors.InvalidConfirmationCodeError()
            self._replace_codes(connection, user.id, codes)
            factor_store.sync_mfa_enabled(connection, user.id, now=self._clock.now())
            batch.user_changed(user.id)
            self._audit.record(connection, "mfa_enabled", user_id=user.id, context=context)
        return codes

    def delete_totp(self, user: UserRecord, *, context: RequestContext = NO_CONTEXT) -> None:
        """Turn the app off (its recovery codes go with it). Raises MfaNotEnabledError."""
        with self._revocation.batch() as batch:
            connection = batch.connection
            if not factor_store.delete_totp(connection, user.id):
                raise errors.MfaNotEnabledError()
            factor_store.sync_mfa_enabled(connection, user.id, now=self._clock.now())
            batch.user_changed(user.id)
            self._audit.record(connection, "mfa_disabled", user_id=user.id, context=context)

    def regenerate_recovery_codes(
        self, user: UserRecord, *, context: RequestContext = NO_CONTEXT
    ) -> list[str]:
        """Ten new recovery codes in place of all the old ones. Raises MfaNotEnabledError."""
        codes = new_recovery_codes()
        with self._database.transaction() as connection:
            stored = factor_store.find_totp(connection, user.id)
            if stored is None or not stored.is_active:
                raise errors.MfaNotEnabledError()
            self._replace_codes(connection, user.id, codes)
            self._audit.record(
                connection, "recovery_codes_regenerated", user_id=user.id, context=context
            )
        return codes

    def _replace_codes(self, connection: Connection, user_id: str, codes: list[str]) -> None:
        digests = [hash_recovery_code(normalize_recovery_code(code) or "") for code in codes]
        factor_store.replace_recovery_codes(connection, user_id, digests, now=self._clock.now())

    def remove_factors(
        self, user_id: str, *, admin_id: str, context: RequestContext = NO_CONTEXT
    ) -> None:
        """An admin removes every second factor of a user; the user's sessions end.
        Raises UserNotFoundError."""
        with self._revocation.batch() as batch:
            connection = batch.connection
            if user_store.find_user_by_id(connection, user_id) is None:
                raise errors.UserNotFoundError()
            removed = factor_store.delete_factors(connection, user_id, now=self._clock.now())
            batch.end_user_sessions(user_id, reason="mfa_removed")
            batch.user_changed(user_id)
            self._audit.record(
                connection,
                "mfa_removed",
                user_id=user_id,
                context=context,
                detail={"by": admin_id, "rows": removed},
            )
