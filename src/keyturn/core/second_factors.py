"""Second factors, the rules: TOTP codes (RFC 6238), recovery codes, and the `amr` of a login
that used them. Pure: no I/O; the caller passes the time."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable

import pyotp

from keyturn import wire

TOTP_DIGITS = 6
TOTP_PERIOD_SECONDS = 30
# RFC 6238 §5.2: one step either way covers a phone's clock drift and the time to type.
TOTP_SKEW_STEPS = 1
RECOVERY_CODE_COUNT = 10
# 16 characters of a 32-letter alphabet: 80 random bits. Stored as SHA-256, so a copy of the
# table cannot be searched for the codes (2^80 guesses); grouped by four to read aloud.
_RECOVERY_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford's base32: no i, l, o, u
_RECOVERY_GROUPS = 4
_RECOVERY_GROUP_LENGTH = 4
_RECOVERY_SHAPE = re.compile(r"[0-9a-hjkmnp-tv-z]{16}")
_CODE_SHAPE = re.compile(r"[0-9]{6}")


def new_totp_secret() -> str:
    """160 random bits in base32 (RFC 4226 §4 recommends the HMAC-SHA-1 output size)."""
    return pyotp.random_base32(length=32)


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    """The `otpauth://totp/...` URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD_SECONDS).provisioning_uri(
        name=account, issuer_name=issuer
    )


def normalize_totp_code(code: str) -> str | None:
    """The six digits of a typed code (spaces and a middle dash forgiven), or None."""
    digits = code.replace(" ", "").replace("-", "")
    return digits if _CODE_SHAPE.fullmatch(digits) else None


def time_step(now: float) -> int:
    return int(now) // TOTP_PERIOD_SECONDS


def matching_step(secret: str, code: str, *, now: float, after_step: int | None) -> int | None:
    """The time step within ±1 of `now` whose code is `code`, only among steps later than
    `after_step` (the last one accepted: a code works once), or None.

    Every candidate step is compared, in constant time, so the answer's timing does not
    tell which step matched."""
    digits = normalize_totp_code(code)
    if digits is None:
        return None
    totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD_SECONDS)
    current = time_step(now)
    found: int | None = None
    for step in range(current - TOTP_SKEW_STEPS, current + TOTP_SKEW_STEPS + 1):
        expected = totp.generate_otp(step)
        if hmac.compare_digest(expected, digits) and (after_step is None or step > after_step):
            found = step if found is None else found
    return found


def new_recovery_codes(count: int = RECOVERY_CODE_COUNT) -> list[str]:
    """`count` fresh codes, each `xxxx-xxxx-xxxx-xxxx` of 80 random bits."""
    codes = []
    for _ in range(count):
        letters = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(16))
        codes.append(
            "-".join(
                letters[i : i + _RECOVERY_GROUP_LENGTH]
                for i in range(0, _RECOVERY_GROUPS * _RECOVERY_GROUP_LENGTH, _RECOVERY_GROUP_LENGTH)
            )
        )
    return codes


def normalize_recovery_code(code: str) -> str | None:
    """The 16 letters of a typed code (any case, dashes and spaces forgiven), or None."""
    letters = code.strip().lower().replace("-", "").replace(" ", "")
    return letters if _RECOVERY_SHAPE.fullmatch(letters) else None


def hash_recovery_code(normalized: str) -> str:
    """The only form a recovery code is stored in (SHA-256, hex)."""
    return hashlib.sha256(normalized.encode("ascii")).hexdigest()


def second_step_amr(first_amr: Iterable[str], method_amr: Iterable[str]) -> tuple[str, ...]:
    """RFC 8176 methods of a login finished by a second factor: the first factor's, the
    second's, and `mfa`, each once, in that order."""
    methods: list[str] = []
    for method in (*first_amr, *method_amr, wire.AMR_MFA):
        if method not in methods:
            methods.append(method)
    return tuple(methods)
