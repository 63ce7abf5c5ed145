"""Secrets at rest: sealed (authenticated encryption, Fernet) with a key from configuration.

A database dump, a backup or a file readable by other users must not hand out the signing
keys or any other secret Keyturn stores. A sealed value is `fernet:` followed by a Fernet token
(AES-128-CBC + HMAC-SHA256, from `cryptography`); the first key seals, every key unseals, so
the sealing key can be changed while values sealed with an older one still open.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

SEALED_PREFIX = "fernet:"


class SealingError(Exception):
    """A sealing key is malformed, or a sealed value opens with none of the keys."""


def new_sealing_key() -> str:
    """A fresh random sealing key, as KEYTURN_SECRETS_KEY expects it (url-safe base64)."""
    return Fernet.generate_key().decode("ascii")


def is_sealed(value: str) -> bool:
    return value.startswith(SEALED_PREFIX)


class Sealer:
    """Seals with the first key; unseals with any of them (the others are older keys)."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise SealingError("no sealing key is configured")
        try:
            self._fernets = [Fernet(key.strip().encode("ascii")) for key in keys]
        except (ValueError, UnicodeError) as exc:
            raise SealingError(
                "a sealing key (KEYTURN_SECRETS_KEY, KEYTURN_SECRETS_KEY_FILE or"
                " KEYTURN_SECRETS_OLD_KEYS) must be 32 random bytes in url-safe base64"
                " (44 characters)"
            ) from exc
        self._all = MultiFernet(self._fernets)
        self._keys = tuple(keys)

    def sealing_with(self, key: str) -> Sealer:
        """A Sealer that seals with `key` and still opens what this one sealed: a dedicated
        key for one kind of secret, set after such secrets were sealed with the general one."""
        return Sealer([key, *self._keys])

    def seal(self, plaintext: bytes) -> str:
        return SEALED_PREFIX + self._fernets[0].encrypt(plaintext).decode("ascii")

    def unseal(self, value: str) -> bytes:
        """The plaintext of a sealed value; raises SealingError for plain text, a tampered
        value, or one sealed with a key not configured."""
        if not is_sealed(value):
            raise SealingError("a stored secret is not sealed")
        try:
            return self._all.decrypt(value[len(SEALED_PREFIX) :].encode("ascii"))
        except (InvalidToken, UnicodeError) as exc:
            raise SealingError(
                "a stored secret does not open with the configured sealing keys"
                " (KEYTURN_SECRETS_KEY, KEYTURN_SECRETS_KEY_FILE, KEYTURN_SECRETS_OLD_KEYS)"
            ) from exc

    def needs_resealing(self, value: str) -> bool:
        """Whether `value` is plain text or sealed with an older key, not the current one."""
        if not is_sealed(value):
            return True
        try:
            self._fernets[0].decrypt(value[len(SEALED_PREFIX) :].encode("ascii"))
        except (InvalidToken, UnicodeError):
            return True
        return False

    def reseal(self, value: str) -> str:
        """`value` sealed with the current key: plain text is sealed, an older seal renewed."""
        return self.seal(self.unseal(value) if is_sealed(value) else value.encode())
