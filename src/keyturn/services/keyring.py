"""The signing keys of a running server: created on first start, rotated, imported, revoked,
reloaded from storage."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from keyturn.clock import Clock
from keyturn.config import Settings
from keyturn.core.keys import (
    KeyRing,
    SigningKey,
    generate_private_key_pem,
    hmac_signing_key,
    new_kid,
    normalize_private_key_pem,
)
from keyturn.core.sealing import Sealer
from keyturn.core.sessions import KIND_KEY
from keyturn.core.tokens import CLOCK_SKEW_SECONDS
from keyturn.revocation.service import RevocationService
from keyturn.storage import keys as key_store
from keyturn.storage.db import Database

# A rotated-in key is published this long before it signs, so every instance knows it first.
KEY_ACTIVATION_DELAY = timedelta(seconds=10)


class KeyNotFoundError(ValueError):
    """No signing key of the configured algorithm has this kid."""


@dataclass(frozen=True, slots=True)
class KeyState:
    """One key as `keyturn keys list` shows it."""

    kid: str
    algorithm: str
    state: str  # signing, next, published, retired, revoked
    until: datetime | None  # published: until when; revoked: since when


class KeyringService:
    """Holds the current KeyRing; `reload()` picks up keys other instances or the CLI added."""

    def __init__(
        self, settings: Settings, database: Database, clock: Clock, *, sealer: Sealer
    ) -> None:
        self._settings = settings
        self._database = database
        self._clock = clock
        self._sealer = sealer
        self._ring = KeyRing([])
        self._reload_wanted = False
        # Keys revoked by the feed stay out of every ring loaded after, even one read from a
        # snapshot taken just before the revocation committed.
        self._revoked: dict[str, datetime] = {}
        self._lock = threading.Lock()

    @property
    def ring(self) -> KeyRing:
        return self._ring

    def ensure_signing_key(self) -> None:
        """Create the first key when storage has none for the configured algorithm."""
        algorithm = self._settings.jwt_algorithm
        if algorithm == "HS256":
            self.reload()
            return
        with self._database.transaction() as connection:
            keys = key_store.load_keys(connection, algorithm=algorithm, sealer=self._sealer)
            if not any(key.retired_at is None and key.revoked_at is None for key in keys):
                key_store.insert_key(
                    connection,
                    kid=new_kid(),
                    algorithm=algorithm,
                    private_key_pem=generate_private_key_pem(algorithm),
                    now=self._clock.now(),
                    sealer=self._sealer,
                )
        self.reload()

    def reload(self) -> None:
        algorithm = self._settings.jwt_algorithm
        if algorithm == "HS256":
            secret = self._settings.secret_key
            if secret is None:
                raise RuntimeError("HS256 needs KEYTURN_SECRET_KEY")
            self._ring = KeyRing(
                [hmac_signing_key(secret.get_secret_value().encode(), created_at=self._clock.now())]
            )
            return
        with self._database.snapshot() as connection:
            keys = key_store.load_keys(connection, algorithm=algorithm, sealer=self._sealer)
        ring = KeyRing(keys)
        with self._lock:
            for kid, revoked_at in self._revoked.items():
                ring = ring.without(kid, now=revoked_at)
            self._ring = ring

    def signing_key(self) -> SigningKey:
        """The key that signs now. When the ring has none (its key was just revoked on
        another instance), storage is read once for the replacement. Blocking."""
        now = self._clock.now()
        try:
            return self._ring.signing_key(now=now)
        except LookupError:
            self.reload()
            return self._ring.signing_key(now=now)

    def forget(self, kid: str) -> bool:
        """Stop trusting `kid` at once (a revocation from the feed); True when it was known."""
        with self._lock:
            self._revoked.setdefault(kid, self._clock.now())
            known = kid in self._ring
            if known:
                self._ring = self._ring.without(kid, now=self._revoked[kid])
        return known

    def rotate(self) -> str:
        """Add a key that signs after a short delay; older keys stay published until their
        tokens have expired. Returns the new kid."""
        return self._add_key(generate_private_key_pem(self._asymmetric_algorithm("rotate")))

    def import_key(self, private_key_pem: bytes) -> str:
        """Like rotate(), with the operator's private key (PKCS#8 PEM of the configured
        algorithm). Returns the new kid; raises ValueError for a key that does not fit."""
        algorithm = self._asymmetric_algorithm("import")
        return self._add_key(normalize_private_key_pem(private_key_pem, algorithm=algorithm))

    def _asymmetric_algorithm(self, action: str) -> str:
        algorithm = self._settings.jwt_algorithm
        if algorithm == "HS256":
            raise ValueError(f"HS256 keys come from KEYTURN_SECRET_KEY; change it to {action}.")
        return algorithm

    def rotate_if_due(self, every: timedelta) -> str | None:
        """Rotate as rotate() does when the key in force is at least `every` old; the new
        kid, or None when nothing was due. Instances doing this together rotate once: the
        old key is retired by a conditional write, and only the instance whose write
        retired it adds the successor."""
        algorithm = self._settings.jwt_algorithm
        if algorithm == "HS256":
            return None
        with self._database.snapshot() as connection:
            newest = key_store.newest_active_key(connection, algorithm=algorithm)
        if newest is None or self._clock.now() - newest[1] < every:
            return None
        return self._add_key(generate_private_key_pem(algorithm), replacing=newest[0]) or None

    def _add_key(self, private_key_pem: bytes, *, replacing: str | None = None) -> str:
        """Publish a key now that signs after KEY_ACTIVATION_DELAY; the active ones retire
        then, published until their last tokens expire. With `replacing`, only if that key
        is still active (else "" and nothing changes)."""
        algorithm = self._settings.jwt_algorithm
        now = self._clock.now()
        activates_at = now + KEY_ACTIVATION_DELAY
        kid = new_kid()
        publish_until = activates_at + timedelta(
            seconds=self._settings.access_ttl_seconds + CLOCK_SKEW_SECONDS
        )
        with self._database.transaction() as connection:
            if replacing is not None and not key_store.retire_key(
                connection, replacing, now=activates_at, publish_until=publish_until
            ):
                return ""
            key_store.retire_active_keys(
                connection, algorithm=algorithm, now=activates_at, publish_until=publish_until
            )
            key_store.insert_key(
                connection,
                kid=kid,
                algorithm=algorithm,
                private_key_pem=private_key_pem,
                now=activates_at,
                sealer=self._sealer,
            )
        self.reload()
        return kid

    def request_reload(self) -> None:
        """A token named a key this ring lacks (another instance rotated): reload soon."""
        self._reload_wanted = True

    def take_reload_request(self) -> bool:
        """Whether a reload was requested, clearing the request: the caller reloads."""
        wanted, self._reload_wanted = self._reload_wanted, False
        return wanted

    def revoke(self, kid: str, *, revocation: RevocationService) -> str | None:
        """Stop `kid` signing and verifying at once, here and (through the revocation feed)
        on every instance. When it was the key in force, a new key signs from now on, with
        no activation delay: the revoked one must not sign a token more. Returns the new
        key's kid, if one was made. Raises KeyNotFoundError for an unknown kid."""
        algorithm = self._asymmetric_algorithm("revoke")
        now = self._clock.now()
        replacement: str | None = None
        with self._database.transaction() as connection:
            found = key_store.key_algorithm(connection, kid)
            if found is None or found[0] != algorithm:
                raise KeyNotFoundError(f"there is no {algorithm} signing key {kid}")
            key_store.revoke_key(connection, kid, now=now)
            keys = key_store.load_keys(connection, algorithm=algorithm, sealer=self._sealer)
            if not any(key.retired_at is None and key.revoked_at is None for key in keys):
                replacement = new_kid()
                key_store.insert_key(
                    connection,
                    kid=replacement,
                    algorithm=algorithm,
                    private_key_pem=generate_private_key_pem(algorithm),
                    now=now,
                    sealer=self._sealer,
                )
            recorded = revocation.record(connection, KIND_KEY, kid)
        revocation.publish([recorded])
        self.forget(kid)
        self.reload()
        return replacement

    def key_states(self) -> list[KeyState]:
        """Every stored key of the configured algorithm, oldest first, with its state now."""
        now = self._clock.now()
        if self._settings.jwt_algorithm == "HS256":
            key = self._ring.signing_key(now=now)
            return [KeyState(kid=key.kid, algorithm=key.algorithm, state="signing", until=None)]
        with self._database.snapshot() as connection:
            keys_now = key_store.load_keys(
                connection, algorithm=self._settings.jwt_algorithm, sealer=self._sealer
            )
        signing = KeyRing(keys_now).signing_key(now=now) if keys_now else None
        return [
            _state_of(key, now=now, signing=signing)
            for key in sorted(keys_now, key=lambda key: key.created_at)
        ]

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        return self._ring.jwks(now=self._clock.now())


def _state_of(key: SigningKey, *, now: datetime, signing: SigningKey | None) -> KeyState:
    def state(name: str, until: datetime | None = None) -> KeyState:
        return KeyState(kid=key.kid, algorithm=key.algorithm, state=name, until=until)

    if key.revoked_at is not None:
        return state("revoked", key.revoked_at)
    if signing is not None and key.kid == signing.kid:
        return state("signing")
    if key.retired_at is None:
        return state("next", key.created_at)  # published, signs from its creation time
    if key.is_published(now):
        return state("published", key.publish_until)
    return state("retired")
