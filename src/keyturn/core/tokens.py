"""Access tokens (RFC 9068 JWTs): minting and the verification every protected request runs."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jwt.algorithms import Algorithm, get_default_algorithms

from keyturn import wire
from keyturn.core.keys import KeyRing, SigningKey
from keyturn.errors import InvalidTokenError, TokenExpiredError

MAX_TOKEN_BYTES = 8192
_ACCEPTED_TYP = frozenset({wire.ACCESS_TOKEN_TYP, "application/at+jwt"})
_REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti", "sid")
CLOCK_SKEW_SECONDS = 30
# PyJWT's algorithm objects sign and verify (ES256's raw r||s included); the JWS framing
# around them is done here, once: jwt.encode/jwt.decode re-serialize the header, prepare the
# key and parse the header twice on every call, a third of the time of a token check.
_ALGORITHMS: dict[str, Algorithm] = get_default_algorithms()
_MALFORMED = "The access token is malformed."


@dataclass(frozen=True, slots=True)
class _PreparedKey:
    key: SigningKey
    algorithm: Algorithm
    header_segment: str
    signing_key: Any
    verifying_key: Any


_prepared: dict[int, _PreparedKey] = {}


def _prepare(key: SigningKey) -> _PreparedKey:
    """The key with its algorithm object and encoded JWS header, made once per key."""
    prepared = _prepared.get(id(key))
    if prepared is not None and prepared.key is key:
        return prepared
    algorithm = _ALGORITHMS[key.algorithm]
    header = {"alg": key.algorithm, "kid": key.kid, "typ": wire.ACCESS_TOKEN_TYP}
    prepared = _PreparedKey(
        key=key,
        algorithm=algorithm,
        header_segment=_b64encode(json.dumps(header, separators=(",", ":"), sort_keys=True)),
        # Keys read from a JWKS only verify.
        signing_key=None if key.signing_key is None else algorithm.prepare_key(key.signing_key),
        verifying_key=algorithm.prepare_key(key.verifying_key),
    )
    if len(_prepared) >= 64:  # keys rotate rarely; forget old ones rather than grow
        _prepared.clear()
    _prepared[id(key)] = prepared
    return prepared


def _b64encode(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(segment: str) -> bytes:
    """base64url without padding (RFC 7515 §2), as PyJWT reads it."""
    data = segment.encode("ascii")
    missing = -len(data) % 4
    return base64.urlsafe_b64decode(data + b"=" * missing)


def _json_object(segment: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64decode(segment))
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

    def has_role(self, role: str) -> bool:
        return role in self.roles


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
) -> tuple[str, AccessClaims]:
    """Sign an access token with `key`; the header pins `typ` and `kid`."""
    issued_at = int(now.timestamp())
    claims = AccessClaims(
        subject=subject,
        session_id=session_id,
        token_id=secrets.token_urlsafe(16),
        client_id=client_id,
        roles=roles,
        issued_at=issued_at,
        expires_at=issued_at + max(1, int(lifetime.total_seconds())),
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
    }
    prepared = _prepare(key)
    signing_input = (
        prepared.header_segment + "." + _b64encode(json.dumps(payload, separators=(",", ":")))
    )
    signature = prepared.algorithm.sign(signing_input.encode("ascii"), prepared.signing_key)
    return signing_input + "." + _b64encode(signature), claims


def verify_access_token(
    token: str, *, keyring: KeyRing, issuer: str, audience: str, now: float
) -> AccessClaims:
    """Check every part of an access token and return its claims.

    The algorithm and key come from our own key ring by `kid`; the token's `alg` must match
    that key's, and `jku`, `x5u`, `jwk` and `x5c` are never followed.
    Raises TokenExpiredError (only for an otherwise valid token), UnknownKeyError or
    InvalidTokenError.
    """
    if len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
        raise InvalidTokenError(_MALFORMED)
    header_segment, payload_segment, signature_segment = token.split(".")
    header = _json_object(header_segment)
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYP:
        raise InvalidTokenError("The token is not an access token.")
    if "crit" in header:
        raise InvalidTokenError("The access token uses unsupported header extensions.")
    kid = header.get("kid")
    key = keyring.find(kid) if isinstance(kid, str) else None
    if key is None:
        raise UnknownKeyError("The access token was signed by an unknown key.")
    if header.get("alg") != key.algorithm:
        raise InvalidTokenError("The access token's algorithm does not match its key.")
    prepared = _prepare(key)
    try:
        signing_input = (header_segment + "." + payload_segment).encode("ascii")
        signature = _b64decode(signature_segment)
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise InvalidTokenError(_MALFORMED) from exc
    if not prepared.algorithm.verify(signing_input, prepared.verifying_key, signature):
        raise InvalidTokenError()
    payload = _json_object(payload_segment)
    # Time claims are checked in _claims_from_payload against the injected clock.
    if any(payload.get(claim) is None for claim in _REQUIRED_CLAIMS):
        raise InvalidTokenError()
    if payload["iss"] != issuer or not _is_for(payload["aud"], audience):
        raise InvalidTokenError()
    return _claims_from_payload(payload, now=now)


def _is_for(claim: object, audience: str) -> bool:
    """RFC 7519 §4.1.3: `aud` is one string or an array of strings, and names us."""
    audiences = [claim] if isinstance(claim, str) else claim
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        return False
    return audience in audiences


def _claims_from_payload(payload: dict[str, Any], *, now: float) -> AccessClaims:
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
    )


def _is_timestamp(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class VerifiedTokenCache:
    """Tokens already verified, by their exact string; bounded, oldest entries leave first.

    Only a token that passed every check enters; a hit still has `exp` checked, and the
    caller still checks revocation and the user on every request.
    """

    def __init__(self, max_entries: int) -> None:
        self._entries: OrderedDict[str, AccessClaims] = OrderedDict()
        self._max_entries = max_entries

    def get(self, token: str, *, now: float) -> AccessClaims | None:
        claims = self._entries.get(token)
        if claims is None:
            return None
        if now >= claims.expires_at:
            del self._entries[token]
            raise TokenExpiredError()
        return claims

    def put(self, token: str, claims: AccessClaims) -> None:
        if self._max_entries <= 0:
            return
        self._entries[token] = claims
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
