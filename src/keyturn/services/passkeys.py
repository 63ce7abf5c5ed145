"""Passkeys of an account: registering one (WebAuthn attestation, verified by py_webauthn),
listing, renaming and removing them; and the relying party both ceremonies share.

Every ceremony starts with a challenge the server makes, stores as a digest bound to its
purpose (and account), and uses up in one conditional DELETE when the answer comes back, so
an answer is accepted once, for the purpose it was made for, within CHALLENGE_TTL.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from webauthn import generate_registration_options, options_to_json, verify_registration_response
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url, parse_client_data_json
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from keyturn import errors
from keyturn.clock import Clock
from keyturn.config import Settings
from keyturn.core.context import NO_CONTEXT, RequestContext
from keyturn.core.passkeys import (
    ChallengePurpose,
    Passkey,
    clean_passkey_name,
    default_passkey_name,
    hash_challenge,
    new_challenge,
    new_passkey_id,
)
from keyturn.revocation.service import RevocationService
from keyturn.services.audit import AuditTrail
from keyturn.services.browser import origin_of
from keyturn.services.identities import sign_in_methods_left
from keyturn.storage import factors as factor_store
from keyturn.storage import passkeys as passkey_store
from keyturn.storage import users as user_store
from keyturn.storage.db import Database

CHALLENGE_TTL = timedelta(seconds=300)
MAX_PASSKEYS_PER_USER = 32
# Every credential comes from the browser as JSON: parsing it is the library's work, and any
# way it fails (a missing member, bad base64url, CBOR that does not decode) is one answer.
ParseFailure = Exception


class RelyingParty:
    """Keyturn as a WebAuthn relying party: its id (the public origin's host), the origin
    ceremonies must come from, and the challenges it hands out and takes back."""

    def __init__(self, settings: Settings, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock
        origin = origin_of(settings.public_origin or settings.effective_issuer)
        # origin_of refuses anything without an http(s) scheme and host; the issuer has both.
        self.origin = origin or settings.effective_issuer.rstrip("/")
        self.rp_id = urlsplit(self.origin).hostname or ""
        self.name = settings.rp_name
        self.timeout_ms = int(CHALLENGE_TTL.total_seconds() * 1000)

    def issue_challenge(self, purpose: ChallengePurpose, *, user_id: str | None) -> bytes:
        challenge = new_challenge()
        with self._database.transaction() as connection:
            passkey_store.insert_challenge(
                connection,
                challenge_hash=hash_challenge(challenge),
                purpose=purpose,
                user_id=user_id,
                expires_at=self._clock.now() + CHALLENGE_TTL,
            )
        return challenge

    def take_challenge(
        self,
        client_data_json: bytes,
        *,
        purpose: ChallengePurpose,
        user_id: str | None,
        error: type[errors.InvalidCredentialError],
    ) -> bytes:
        """The challenge the browser signed (from clientDataJSON), used up now; raises `error`
        when it is not one of ours for this purpose and account, or is used or expired. A
        challenge used with a failing answer is gone too: each one is tried once."""
        try:
            client_data = parse_client_data_json(client_data_json)
        except ParseFailure as exc:
            raise error() from exc
        # An answer made inside a frame of another site is not our page asking.
        if client_data.cross_origin:
            raise error()
        with self._database.transaction() as connection:
            taken = passkey_store.take_challenge(
                connection,
                hash_challenge(client_data.challenge),
                purpose=purpose,
                user_id=user_id,
                now=self._clock.now(),
            )
        if not taken:
            raise error()
        return client_data.challenge


class PasskeyService:
    """Registers, lists, renames and removes the passkeys of a signed-in account."""

    def __init__(
        self,
        database: Database,
        clock: Clock,
        *,
        relying_party: RelyingParty,
        audit: AuditTrail,
        revocation: RevocationService,
    ) -> None:
        self._database = database
        self._clock = clock
        self._rp = relying_party
        self._audit = audit
        self._revocation = revocation

    def registration_options(self, user_id: str) -> str:
        """WebAuthn creation options (JSON) for a new passkey of the account: a discoverable
        credential with user verification, no attestation, the account's own passkeys
        excluded. Raises InvalidTokenError for a gone or disabled account."""
        with self._database.snapshot() as connection:
            user = user_store.find_user_by_id(connection, user_id)
            existing = passkey_store.list_passkeys(connection, user_id)
        if user is None or user.is_disabled:
            raise errors.InvalidTokenError("The account of this access token is not active.")
        challenge = self._rp.issue_challenge(ChallengePurpose.REGISTER, user_id=user.id)
        options = generate_registration_options(
            rp_id=self._rp.rp_id,
            rp_name=self._rp.name,
            # The user handle: the account id, random and free of personal data (§14.6.1).
            user_id=user.id.encode(),
            user_name=user.email,
            user_display_name=user.username or user.email,
            challenge=challenge,
            timeout=self._rp.timeout_ms,
            attestation=AttestationConveyancePreference.NONE,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            exclude_credentials=[descriptor_of(passkey) for passkey in existing],
        )
        return options_to_json(options)

    def register(
        self,
        user_id: str,
        credential: dict[str, Any],
        *,
        name: str | None = None,
        context: RequestContext = NO_CONTEXT,
    ) -> Passkey:
        """Verify the browser's answer to `registration_options` and store the passkey.

        Raises InvalidNewCredentialError for anything wrong with it: malformed, made for
        another origin or rp id, an unknown, used or expired challenge (or one made for
        another account, or for a login), no user verification, a credential registered
        already, or the account's MAX_PASSKEYS_PER_USER reached.
        """
        refuse = errors.InvalidNewCredentialError
        try:
            client_data_json = passkey_client_data(credential, key="attestationObject")
        except ParseFailure as exc:
            raise refuse() from exc
        challenge = self._rp.take_challenge(
            client_data_json, purpose=ChallengePurpose.REGISTER, user_id=user_id, error=refuse
        )
        try:
            verified = verify_registration_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=self._rp.rp_id,
                expected_origin=self._rp.origin,
                require_user_verification=True,
            )
        except ParseFailure as exc:
            raise refuse() from exc
        transports = credential.get("response", {}).get("transports")
        now = self._clock.now()
        passkey = Passkey(
            id=new_passkey_id(),
            user_id=user_id,
            credential_id=bytes_to_base64url(verified.credential_id),
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            transports=known_transports(transports),
            backup_eligible=verified.credential_device_type is CredentialDeviceType.MULTI_DEVICE,
            backed_up=verified.credential_backed_up,
            aaguid=verified.aaguid,
            name=clean_passkey_name(name or "") or default_passkey_name(context.user_agent),
            created_at=now,
            last_used_at=None,
        )
        # A batch: the first passkey turns mfa_enabled on, and every cached user must know.
        with self._revocation.batch() as batch:
            connection = batch.connection
            if passkey_store.count_passkeys(connection, user_id) >= MAX_PASSKEYS_PER_USER:
                raise refuse("This account has as many passkeys as it may have; remove one.")
            if not passkey_store.insert_passkey(connection, passkey):
                raise refuse("This passkey is registered already.")
            factor_store.sync_mfa_enabled(connection, user_id, now=now)
            batch.user_changed(user_id)
            self._audit.record(
                connection,
                "passkey_registered",
                user_id=user_id,
                context=context,
                detail={"passkey_id": passkey.id, "aaguid": passkey.aaguid},
            )
        return passkey

    def list_passkeys(self, user_id: str) -> list[Passkey]:
        with self._database.snapshot() as connection:
            return passkey_store.list_passkeys(connection, user_id)

    def rename(
        self, user_id: str, passkey_id: str, *, name: str, context: RequestContext = NO_CONTEXT
    ) -> Passkey:
        """Give the user's passkey another name. Raises PasskeyNotFoundError for anyone
        else's, ValidationFailedError for a blank name."""
        cleaned = clean_passkey_name(name)
        if not cleaned:
            raise errors.ValidationFailedError("Give the passkey a name.")
        with self._database.transaction() as connection:
            if not passkey_store.rename_passkey(connection, user_id, passkey_id, name=cleaned):
                raise errors.PasskeyNotFoundError()
            self._audit.record(
                connection,
                "passkey_renamed",
                user_id=user_id,
                context=context,
                detail={"passkey_id": passkey_id},
            )
            renamed = passkey_store.find_passkey(connection, user_id, passkey_id)
        assert renamed is not None  # noqa: S101 - renamed just above, in this transaction
        return renamed

    def remove(
        self, user_id: str, passkey_id: str, *, context: RequestContext = NO_CONTEXT
    ) -> None:
        """Delete the user's passkey; raises PasskeyNotFoundError for anyone else's."""
        with self._revocation.batch() as batch:
            connection = batch.connection
            user = user_store.find_user_by_id(connection, user_id)
            # An account a provider made has no password: its last way in stays.
            if (
                user is not None
                and passkey_store.find_passkey(connection, user_id, passkey_id) is not None
                and sign_in_methods_left(connection, user, without_passkey=passkey_id) == 0
            ):
                raise errors.LastSignInMethodError()
            if not passkey_store.delete_passkey(connection, user_id, passkey_id):
                raise errors.PasskeyNotFoundError()
            factor_store.sync_mfa_enabled(connection, user_id, now=self._clock.now())
            batch.user_changed(user_id)
            self._audit.record(
                connection,
                "passkey_removed",
                user_id=user_id,
                context=context,
                detail={"passkey_id": passkey_id},
            )


def descriptor_of(passkey: Passkey) -> PublicKeyCredentialDescriptor:
    return PublicKeyCredentialDescriptor(
        id=base64url_to_bytes(passkey.credential_id),
        transports=[AuthenticatorTransport(value) for value in passkey.transports],
    )


def known_transports(value: object) -> tuple[str, ...]:
    """The transports a browser reported that WebAuthn names; others are dropped, not stored."""
    if not isinstance(value, list):
        return ()
    known = {transport.value for transport in AuthenticatorTransport}
    return tuple(dict.fromkeys(item for item in value if isinstance(item, str) and item in known))


def passkey_client_data(credential: dict[str, Any], *, key: str) -> bytes:
    """clientDataJSON of a credential whose response also carries `key`; raises on any other
    shape (the library then parses the rest)."""
    response = credential["response"]
    if not isinstance(response, dict) or not isinstance(response.get(key), str):
        raise ValueError(f"response.{key} is missing")
    client_data = response["clientDataJSON"]
    if not isinstance(client_data, str):
        raise ValueError("response.clientDataJSON is not a string")
    return base64url_to_bytes(client_data)
