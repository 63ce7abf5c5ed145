"""Sign in with a provider, the pure parts: where a sign-in may return to, the signed state a
browser carries to the provider and back, who a provider identity signs in as, and the
refusals that end a sign-in (shown on the login page, never as a JSON body)."""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass

from keyturn import errors, wire
from keyturn.errors import KeyturnError

DEFAULT_RETURN_TO = "/dashboard"
MAX_RETURN_TO_CHARS = 512
MAX_STATE_COOKIE_CHARS = 2048


def checked_return_to(value: str | None) -> str:
    """`value` when it is a path on this origin, DEFAULT_RETURN_TO when absent.

    Raises InvalidReturnToError for anything a browser could read as another origin: a
    scheme (`https:`, `javascript:`), a network path (`//evil`, and `/\\evil`, which browsers
    read as `//evil`), control characters or spaces (stripped by browsers before parsing).
    """
    if value is None or value == "":
        return DEFAULT_RETURN_TO
    if (
        len(value) > MAX_RETURN_TO_CHARS
        or not value.startswith("/")
        or value.startswith(("//", "/\\"))
        or any(ord(char) <= 0x20 or ord(char) == 0x7F or char == "\\" for char in value)
    ):
        raise errors.InvalidReturnToError()
    return value


@dataclass(frozen=True, slots=True)
class FlowState:
    """What a sign-in started in this browser must find again at the callback."""

    provider: str
    state: str
    nonce: str
    code_verifier: str
    return_to: str
    expires_at: int  # seconds since the epoch
    link_user_id: str | None = None  # set when a signed-in user links this provider


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload: str) -> bytes:
    return hmac.new(key, b"keyturn-oidc-state\x00" + payload.encode(), hashlib.sha256).digest()


def sign_flow_state(flow: FlowState, *, key: bytes) -> str:
    """The cookie value: the state as JSON, and an HMAC over it with the server's key."""
    payload = _b64(json.dumps(asdict(flow), separators=(",", ":")).encode())
    return f"{payload}.{_b64(_mac(key, payload))}"


def read_flow_state(value: str | None, *, key: bytes, now: float) -> FlowState | None:
    """The state a cookie carries, or None when it is absent, altered, malformed or expired."""
    if not value or len(value) > MAX_STATE_COOKIE_CHARS:
        return None
    payload, dot, mac_text = value.partition(".")
    if not dot:
        return None
    expected = _b64(_mac(key, payload))
    if not hmac.compare_digest(expected.encode(), mac_text.encode("utf-8", "surrogateescape")):
        return None
    try:
        fields = json.loads(_unb64(payload))
        flow = FlowState(**fields)
    except (ValueError, TypeError, binascii.Error):
        return None
    if not isinstance(flow.expires_at, int) or flow.expires_at <= now:
        return None
    return flow


def state_digest(state: str) -> str:
    """The name a used state is remembered by (never the state itself)."""
    return hashlib.sha256(state.encode()).hexdigest()[:48]


class Resolution(enum.Enum):
    SIGN_IN = "sign_in"  # the identity is known: its user
    LINK_EXISTING = "link_existing"  # a new identity for the account with its verified email
    CREATE = "create"  # nobody has this email: a new account
    ACCOUNT_EXISTS = "account_exists"  # an account has the email, unproven on one side
    LINK_CURRENT = "link_current"  # a signed-in user links a new identity
    ALREADY_LINKED = "already_linked"  # a signed-in user links an identity they have
    IN_USE = "in_use"  # a signed-in user links an identity another user has


def resolve_identity(
    *,
    identity_user_id: str | None,
    email_user_id: str | None,
    email_user_verified: bool,
    provider_email_verified: bool,
    link_user_id: str | None,
) -> Resolution:
    """Who a provider identity signs in as. No I/O.

    An identity already linked signs in as its user. A new one joins an existing account of
    the same address only when both sides vouch for the address: the provider says it
    verified it, and the account's owner proved it to Keyturn. Otherwise whoever controls
    the address at the provider could take the account (or, had an attacker registered the
    address first without proving it, the account would be theirs: pre-account takeover).
    """
    if link_user_id is not None:
        if identity_user_id is None:
            return Resolution.LINK_CURRENT
        if identity_user_id == link_user_id:
            return Resolution.ALREADY_LINKED
        return Resolution.IN_USE
    if identity_user_id is not None:
        return Resolution.SIGN_IN
    if email_user_id is None:
        return Resolution.CREATE
    if provider_email_verified and email_user_verified:
        return Resolution.LINK_EXISTING
    return Resolution.ACCOUNT_EXISTS


# Why a provider sign-in failed --------------------------------------------------------------


class FederationError(KeyturnError):
    """A provider sign-in that cannot complete; the callback sends the browser to
    /login?error=CODE (never a JSON body: the user is navigating)."""

    status = 400


class AccessDeniedError(FederationError):
    code = wire.ACCESS_DENIED
    default_message = "The sign-in was cancelled at the provider."


class ProviderError(FederationError):
    code = wire.PROVIDER_ERROR
    default_message = "The provider refused the sign-in."


class ProviderUnavailableError(FederationError):
    code = wire.PROVIDER_UNAVAILABLE
    status = 503
    default_message = "The provider cannot be reached."


class InvalidStateError(FederationError):
    code = wire.INVALID_STATE
    default_message = "The sign-in was not started in this browser, or was already used."


class InvalidIdTokenError(FederationError):
    code = wire.INVALID_ID_TOKEN
    default_message = "The provider's answer did not pass Keyturn's checks."


class EmailRequiredError(FederationError):
    code = wire.EMAIL_REQUIRED
    default_message = "The provider did not share an email address."


class AccountExistsError(FederationError):
    code = wire.ACCOUNT_EXISTS
    status = 409
    default_message = (
        "An account with this email exists: sign in to it and link the provider there."
    )


class IdentityInUseError(FederationError):
    code = wire.IDENTITY_IN_USE
    status = 409
    default_message = "This provider account is already linked to another Keyturn account."
