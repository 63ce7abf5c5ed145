"""Access tokens (RFC 9068 JWTs): minting and the verification every protected request runs."""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from jwt.algorithms import Algorithm, get_default_algorithms
from jwt.api_jws import PyJWS

from keyturn import wire
from keyturn.core.keys import KeyRing, SigningKey
from keyturn.errors import InvalidTokenError, TokenExpiredError

MAX_TOKEN_BYTES = 8192
_ACCEPTED_TYP = frozenset({wire.ACCESS_TOKEN_TYP, "application/at+jwt"})
_REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti", "sid")
CLOCK_SKEW_SECONDS = 30
_MALFORMED = "The access token is malformed."
# PyJWT parses the JWS and checks the signature; Keyturn only reads the header first to pick
# the key by `kid`, and checks the claims itself (against the injected clock).
_JWS = PyJWS()


def _unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header, read only to choose a key; PyJWT checks everything again."""
    segment = token.split(".", 1)[0].encode("ascii", "replace")
    try:
        value = json.loads(base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise InvalidTokenError(_MALFORMED) from exc
    if not isinstance(value, dict):
        raise InvalidTokenError(_MALFORMED)
    return value


class UnknownKeyError(InvalidTokenError):
    """The token names a `kid` this key ring does not hold (maybe one minted elsewhere)."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    subject: str
    session_id: str
    token_id: str
    client_id: str
    roles: tuple[str, ...]
    issued_at: int
    expires_at: int
    key_id: str = ""
    # RFC 8176 methods of the login behind the session, and when it happened (OIDC Core
    # §2): a token minted without them claims no method, and a login at the epoch.
    amr: tuple[str, ...] = ()
    auth_time: int = 0

    def has_role(self, role: str) -> bool:
        return role in self.roles

    @property
    def used_second_factor(self) -> bool:
        return wire.AMR_MFA in self.amr


def mint_access_token(
    *,
    key: SigningKey,
    issuer: str,
    audience: str,
    subject: str,
    session_id: str,
    roles: tuple[str, ...],
    client_id: str,
    now: datetime,
    lifetime: timedelta,
    amr: tuple[str, ...] = (wire.AMR_PASSWORD,),
    auth_time: datetime | None = None,
) -> tuple[str, AccessClaims]:
    """Sign an access token with `key`; the header pins `typ` and `kid`."""
    moment = now.timestamp()
    issued_at = int(moment)
    # Rounded up, not down: the token outlives the `expires_in` its client counts from now.
    # Rounded down, a one-second token minted at 12.95 would expire at 13.00.
    expires_at = math.ceil(moment) + max(1, int(lifetime.total_seconds()))
    claims = AccessClaims(
        subject=subject,
        session_id=session_id,
        token_id=secrets.token_urlsafe(16),
        client_id=client_id,
        roles=roles,
        issued_at=issued_at,
        expires_at=expires_at,
        key_id=key.kid,
        amr=amr,
        auth_time=issued_at if auth_time is None else int(auth_time.timestamp()),
    )
    payload = {
        wire.CLAIM_ISSUER: issuer,
        wire.CLAIM_SUBJECT: subject,
        wire.CLAIM_AUDIENCE: audience,
        wire.CLAIM_EXPIRES: claims.expires_at,
        wire.CLAIM_ISSUED_AT: issued_at,
        wire.CLAIM_TOKEN_ID: claims.token_id,
        wire.CLAIM_SESSION_ID: session_id,
        wire.CLAIM_CLIENT_ID: client_id,
        wire.CLAIM_ROLES: list(roles),
        wire.CLAIM_AMR: list(amr),
        wire.CLAIM_AUTH_TIME: claims.auth_time,
    }
    # RFC 7515 §7.1 compact serialization. The header is the same for every token of a key,
    # so it is encoded once per key; PyJWT's algorithm object signs, as jwt.encode would
    # (which re-encodes the header and rebuilds a JSON encoder on every call).
    header = _encoded_header(key.kid, key.algorithm)
    signing_input = header + b"." + _b64url(_COMPACT_JSON.encode(payload).encode())
    signature = _signer(key.algorithm).sign(signing_input, key.signing_key)
    token = (signing_input + b"." + _b64url(signature)).decode("ascii")
    return token, claims


_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


# A handful of keys live at once (current, retiring); a bound all the same.
@functools.lru_cache(maxsize=64)
def _encoded_header(kid: str, algorithm: str) -> bytes:
    header = {"alg": algorithm, "kid": kid, "typ": wire.ACCESS_TOKEN_TYP}
    return _b64url(_COMPACT_JSON.encode(header).encode())


@functools.cache
def _signer(algorithm: str) -> Algorithm:
    return get_default_algorithms()[algorithm]


def verify_access_token(
    token: str,
    *,
    keyring: KeyRing,
    issuer: str,
    audience: str,
    now: float,
    max_lifetime_seconds: float | None = None,
) -> AccessClaims:
    """Check every part of an access token and return its claims.

    The algorithm and key come from our own key ring by `kid`; the token's `alg` must match
    that key's, and `jku`, `x5u`, `jwk` and `x5c` are never followed. A key past its
    publishing window, or revoked, verifies nothing. With `max_lifetime_seconds`, a token
    whose `exp - iat` exceeds it (plus the clock skew) is refused: the issuer never mints one.
    Raises TokenExpiredError (only for an otherwise valid token), UnknownKeyError or
    InvalidTokenError.
    """
    if len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
        raise InvalidTokenError(_MALFORMED)
    header = _unverified_header(token)
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYP:
        raise InvalidTokenError("The token is not an access token.")
    if "crit" in header:
        raise InvalidTokenError("The access token uses unsupported header extensions.")
    kid = header.get("kid")
    key = keyring.find(kid) if isinstance(kid, str) else None
    if key is None:
        raise UnknownKeyError("The access token was signed by an unknown key.")
    if now >= key.trusted_until:
        raise InvalidTokenError("The access token was signed by a retired key.")
    if header.get("alg") != key.algorithm:
        raise InvalidTokenError("The access token's algorithm does not match its key.")
    try:
        # Only the key's own algorithm is allowed: `none` and HS256-with-a-public-key fail here.
        verified = _JWS.decode_complete(token, key.verifying_key, algorithms=[key.algorithm])
        payload = json.loads(verified["payload"])
    except (jwt.PyJWTError, ValueError, UnicodeError) as exc:
        raise InvalidTokenError() from exc
    if not isinstance(payload, dict) or any(
        payload.get(claim) is None for claim in _REQUIRED_CLAIMS
    ):
        raise InvalidTokenError()
    if payload["iss"] != issuer or not _is_for(payload["aud"], audience):
        raise InvalidTokenError()
    claims = _claims_from_payload(payload, now=now, key_id=key.kid)
    if (
        max_lifetime_seconds is not None
        and claims.expires_at - claims.issued_at > max_lifetime_seconds + CLOCK_SKEW_SECONDS
    ):
        # Whoever signed this holds a private key but not our rules: a leaked key.
        raise InvalidTokenError("The access token lives longer than this server issues.")
    return claims


def _is_for(claim: object, audience: str) -> bool:
    """RFC 7519 §4.1.3: `aud` is one string or an array of strings, and names us."""
    audiences = [claim] if isinstance(claim, str) else claim
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        return False
    return audience in audiences


def _claims_from_payload(payload: dict[str, Any], *, now: float, key_id: str) -> AccessClaims:
    expires_at = payload["exp"]
    issued_at = payload["iat"]
    if not _is_timestamp(expires_at) or not _is_timestamp(issued_at):
        raise InvalidTokenError("The access token's time claims are malformed.")
    not_before = payload.get("nbf", issued_at)
    if not _is_timestamp(not_before):
        raise InvalidTokenError("The access token's time claims are malformed.")
    if issued_at > now + CLOCK_SKEW_SECONDS or not_before > now + CLOCK_SKEW_SECONDS:
        raise InvalidTokenError("The access token is not valid yet.")
    subject, session_id, token_id = payload["sub"], payload["sid"], payload["jti"]
    client_id = payload.get("client_id", wire.DEFAULT_CLIENT_ID)
    roles = payload.get("roles", [])
    if not all(isinstance(v, str) and v for v in (subject, session_id, token_id, client_id)):
        raise InvalidTokenError("The access token's claims are malformed.")
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise InvalidTokenError("The access token's roles are malformed.")
    amr = payload.get("amr", ())
    auth_time = payload.get("auth_time", 0)
    if not isinstance(amr, list | tuple) or not all(isinstance(method, str) for method in amr):
        raise InvalidTokenError("The access token's amr claim is malformed.")
    if not _is_timestamp(auth_time) or auth_time > now + CLOCK_SKEW_SECONDS:
        raise InvalidTokenError("The access token's auth_time claim is malformed.")
    if now >= expires_at:
        raise TokenExpiredError()
    return AccessClaims(
        subject=subject,
        session_id=session_id,
        token_id=token_id,
        client_id=client_id,
        roles=tuple(roles),
        issued_at=int(issued_at),
        expires_at=int(expires_at),
        key_id=key_id,
        amr=tuple(amr),
        auth_time=int(auth_time),
    )


def _is_timestamp(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class VerifiedTokenCache:
    """Tokens already verified, by their exact string; bounded, oldest entries leave first.

    Only a token that passed every check enters; a hit still has `exp` checked, and the
    caller still checks revocation and the user on every request. An entry put with
    `trusted_until` (its key's, see SigningKey.trusted_until) leaves the cache at that moment,
    so the next check runs in full and refuses a key past its window.
    """

    def __init__(self, max_entries: int) -> None:
        self._entries: OrderedDict[str, tuple[AccessClaims, float]] = OrderedDict()
        self._max_entries = max_entries

    def get(self, token: str, *, now: float) -> AccessClaims | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        claims, trusted_until = entry
        if now >= trusted_until:
            del self._entries[token]
            return None
        if now >= claims.expires_at:
            del self._entries[token]
            raise TokenExpiredError()
        return claims

    def put(self, token: str, claims: AccessClaims, *, trusted_until: float = math.inf) -> None:
        if self._max_entries <= 0:
            return
        self._entries[token] = (claims, trusted_until)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
