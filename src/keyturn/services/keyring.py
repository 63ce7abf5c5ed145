"""The signing keys of a running server: created on first start, rotated, reloaded from storage."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from keyturn.clock import Clock
from keyturn.config import Settings
from keyturn.core.keys import KeyRing, generate_private_key_pem, hmac_signing_key, new_kid
from keyturn.core.tokens import CLOCK_SKEW_SECONDS
from keyturn.storage import keys as key_store
from keyturn.storage.db import Database

# A rotated-in key is published this long before it signs, so every instance knows it first.
KEY_ACTIVATION_DELAY = timedelta(seconds=10)


class KeyringService:
    """Holds the current KeyRing; `reload()` picks up keys other instances or the CLI added."""

    def __init__(self, settings: Settings, database: Database, clock: Clock) -> None:
        self._settings = settings
        self._database = database
        self._clock = clock
        self._ring = KeyRing([])
        self._reload_wanted = False

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
            keys = key_store.load_keys(connection, algorithm=algorithm)
            if not any(key.retired_at is None for key in keys):
                key_store.insert_key(
                    connection,
                    kid=new_kid(),
                    algorithm=algorithm,
                    private_key_pem=generate_private_key_pem(algorithm),
                    now=self._clock.now(),
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
            keys = key_store.load_keys(connection, algorithm=algorithm)
        self._ring = KeyRing(keys)

    def rotate(self) -> str:
        """Add a key that signs after a short delay; older keys stay published until their
        tokens have expired. Returns the new kid."""
        algorithm = self._settings.jwt_algorithm
        if algorithm == "HS256":
            raise ValueError("HS256 keys come from KEYTURN_SECRET_KEY; change it to rotate.")
        now = self._clock.now()
        activates_at = now + KEY_ACTIVATION_DELAY
        kid = new_kid()
        publish_until = activates_at + timedelta(
            seconds=self._settings.access_ttl_seconds + CLOCK_SKEW_SECONDS
        )
        with self._database.transaction() as connection:
            key_store.retire_active_keys(
                connection, algorithm=algorithm, now=activates_at, publish_until=publish_until
            )
            key_store.insert_key(
                connection,
                kid=kid,
                algorithm=algorithm,
                private_key_pem=generate_private_key_pem(algorithm),
                now=activates_at,
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

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        return self._ring.jwks(now=self._clock.now())
