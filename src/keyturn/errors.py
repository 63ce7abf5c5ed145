"""Every refusal Keyturn makes, as an exception that knows its wire code and HTTP status."""

from __future__ import annotations

from typing import Any, ClassVar

from keyturn import wire


class KeyturnError(Exception):
    """A request Keyturn refuses; str(exc) is the sentence shown to the caller."""

    code: ClassVar[str] = wire.INTERNAL_ERROR
    status: ClassVar[int] = 500
    default_message: ClassVar[str] = "Something went wrong on our side."

    def __init__(self, message: str | None = None, **extra: Any) -> None:
        super().__init__(message or self.default_message)
        self.extra = extra

    @property
    def message(self) -> str:
        return str(self)

    def headers(self) -> dict[str, str]:
        return {}


class InvalidRequestError(KeyturnError):
    code = wire.INVALID_REQUEST
    status = 400
    default_message = "The request is malformed."


class ValidationFailedError(KeyturnError):
    code = wire.INVALID_REQUEST
    status = 422
    default_message = "The request has invalid fields."


class ServiceUnavailableError(KeyturnError):
    code = wire.SERVICE_UNAVAILABLE
    status = 503
    default_message = "A service Keyturn depends on is unavailable; try again shortly."

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class OverloadedError(KeyturnError):
    """More requests wait for password hashing than it can answer soon: refused untried."""

    code = wire.OVERLOADED
    status = 503
    default_message = "Keyturn is busy checking other passwords; try again in a moment."

    def __init__(self, message: str | None = None, *, retry_after_seconds: int = 1) -> None:
        super().__init__(message)
        self.retry_after_seconds = max(1, retry_after_seconds)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


class InvalidCredentialsError(KeyturnError):
    code = wire.INVALID_CREDENTIALS
    status = 401
    default_message = "The email, username or password is incorrect."


class AccountDisabledError(KeyturnError):
    code = wire.ACCOUNT_DISABLED
    status = 403
    default_message = "This account is disabled."


class EmailNotVerifiedError(KeyturnError):
    code = wire.EMAIL_NOT_VERIFIED
    status = 403
    default_message = "Confirm your email address first: follow the link we sent you."


class TooManyRequestsError(KeyturnError):
    code = wire.TOO_MANY_REQUESTS
    status = 429
    default_message = "Too many attempts; wait before trying again."

    def __init__(self, message: str | None = None, *, retry_after_seconds: int) -> None:
        super().__init__(message, retry_after=retry_after_seconds)
        self.retry_after_seconds = max(1, retry_after_seconds)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


class InvalidEmailError(KeyturnError):
    code = wire.INVALID_EMAIL
    status = 422
    default_message = "The email address is not valid."


class WeakPasswordError(KeyturnError):
    code = wire.WEAK_PASSWORD
    status = 422
    default_message = "The password is too weak."


class InvalidUsernameError(KeyturnError):
    code = wire.INVALID_USERNAME
    status = 422
    default_message = "The username is not valid."


class EmailTakenError(KeyturnError):
    code = wire.EMAIL_TAKEN
    status = 409
    default_message = "An account with this email already exists."


class UsernameTakenError(KeyturnError):
    code = wire.USERNAME_TAKEN
    status = 409
    default_message = "This username is taken."


class BearerTokenError(KeyturnError):
    """A 401 on an access-protected route: carries WWW-Authenticate (RFC 6750 §3)."""

    status = 401
    rfc6750_error: ClassVar[str | None] = "invalid_token"

    def headers(self) -> dict[str, str]:
        if self.rfc6750_error is None:
            return {"WWW-Authenticate": 'Bearer realm="keyturn"'}
        description = self.message.replace('"', "'")
        return {
            "WWW-Authenticate": (
                f'Bearer realm="keyturn", error="{self.rfc6750_error}", '
                f'error_description="{description}"'
            )
        }


class MissingTokenError(BearerTokenError):
    code = wire.MISSING_TOKEN
    rfc6750_error = None  # RFC 6750 §3.1: no error code when no credentials were sent
    default_message = "This route needs an access token."


class TokenExpiredError(BearerTokenError):
    code = wire.TOKEN_EXPIRED
    default_message = "The access token has expired; refresh it."


class InvalidTokenError(BearerTokenError):
    code = wire.INVALID_TOKEN
    default_message = "The access token is invalid."


class InvalidLinkTokenError(KeyturnError):
    """A token from a mailed link (verification, reset, email change) that is unknown, used,
    expired or tampered with: one answer for all, so a caller learns nothing from it. Not a
    BearerTokenError: no access token was involved, so no WWW-Authenticate."""

    code = wire.INVALID_TOKEN
    status = 400
    default_message = "This link is invalid or has expired; ask for a new one."


class InsufficientRoleError(KeyturnError):
    code = wire.INSUFFICIENT_ROLE
    status = 403
    default_message = "Your account lacks the role this route needs."

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="keyturn", error="insufficient_scope"'}


class CsrfFailedError(KeyturnError):
    code = wire.CSRF_FAILED
    status = 403
    default_message = "The CSRF token is missing or does not match."


class InvalidRefreshTokenError(KeyturnError):
    code = wire.INVALID_REFRESH_TOKEN
    status = 401
    default_message = "The refresh token is invalid."


class RefreshTokenExpiredError(KeyturnError):
    code = wire.REFRESH_TOKEN_EXPIRED
    status = 401
    default_message = "The refresh token has expired; log in again."


class RefreshTokenReusedError(KeyturnError):
    code = wire.REFRESH_TOKEN_REUSED
    status = 401
    default_message = (
        "This refresh token was already used; the session has been ended to protect the account."
    )


class InvalidReturnToError(KeyturnError):
    code = wire.INVALID_RETURN_TO
    status = 400
    default_message = "return_to must be a path on this site, such as /dashboard."


class ProviderNotFoundError(KeyturnError):
    code = wire.PROVIDER_NOT_FOUND
    status = 404
    default_message = "No sign-in provider has this id."


class IdentityNotFoundError(KeyturnError):
    code = wire.IDENTITY_NOT_FOUND
    status = 404
    default_message = "You have no linked sign-in with this id."


class LastSignInMethodError(KeyturnError):
    code = wire.LAST_SIGN_IN_METHOD
    status = 409
    default_message = (
        "This is your only way to sign in: set a password (or link another provider) first."
    )


class SessionNotFoundError(KeyturnError):
    code = wire.SESSION_NOT_FOUND
    status = 404
    default_message = "No such session."


class UserNotFoundError(KeyturnError):
    code = wire.USER_NOT_FOUND
    status = 404
    default_message = "No such user."


class LastAdminError(KeyturnError):
    code = wire.LAST_ADMIN
    status = 409
    default_message = (
        "This is the last active admin: make another user an admin first, so that someone "
        "can still administer Keyturn."
    )


class InvalidCredentialError(KeyturnError):
    """A passkey assertion that does not prove anything: unknown credential, another origin,
    an unknown or used challenge, a bad signature, a malformed credential. One answer for all."""

    code = wire.INVALID_CREDENTIAL
    status = 401
    default_message = "This passkey could not be verified."


class InvalidNewCredentialError(InvalidCredentialError):
    """A passkey registration that cannot be accepted: the caller is signed in, so a 400."""

    status = 400
    default_message = "This passkey could not be registered."


class PasskeyNotFoundError(KeyturnError):
    code = wire.PASSKEY_NOT_FOUND
    status = 404
    default_message = "No such passkey."


class MfaRequiredError(KeyturnError):
    """The password was right and the account has a second factor: the login continues at
    POST /api/auth/mfa/verify with `mfa_token` (carried in the body with `methods`)."""

    code = wire.MFA_REQUIRED
    status = 401
    default_message = "Enter a code from your authenticator app to finish logging in."

    def __init__(self, *, mfa_token: str, methods: list[str]) -> None:
        super().__init__(None, mfa_token=mfa_token, methods=methods)


class InvalidCodeError(KeyturnError):
    code = wire.INVALID_CODE
    status = 401
    default_message = "The code is incorrect or was already used."


class InvalidConfirmationCodeError(InvalidCodeError):
    """A wrong code while setting up an authenticator app: the request, not a login, failed."""

    status = 400
    default_message = "The code is incorrect; check the time on your phone and try again."


class InvalidMfaTokenError(KeyturnError):
    """Unknown, used, expired or worn out by wrong codes: one answer for all."""

    code = wire.INVALID_MFA_TOKEN
    status = 401
    default_message = "This login attempt has expired; log in again with your password."


class ReauthenticationRequiredError(KeyturnError):
    code = wire.REAUTHENTICATION_REQUIRED
    status = 403
    default_message = (
        "Confirm it is you: POST /api/auth/reauthenticate with your password or a code first."
    )


class MfaAlreadyEnabledError(KeyturnError):
    code = wire.MFA_ALREADY_ENABLED
    status = 409
    default_message = "An authenticator app is already active; turn it off first."


class MfaNotEnabledError(KeyturnError):
    code = wire.MFA_NOT_ENABLED
    status = 404
    default_message = "No authenticator app is set up for this account."


class InsufficientUserAuthenticationError(KeyturnError):
    """RFC 9470: the token is valid but its login did not use a second factor."""

    code = wire.INSUFFICIENT_USER_AUTHENTICATION
    status = 403
    default_message = "This needs a login with a second factor."

    def headers(self) -> dict[str, str]:
        return {
            "WWW-Authenticate": (
                'Bearer realm="keyturn", error="insufficient_user_authentication", '
                'error_description="A login with a second factor is required."'
            )
        }


class UnsupportedGrantTypeError(KeyturnError):
    code = wire.UNSUPPORTED_GRANT_TYPE
    status = 400
    default_message = "Keyturn supports the grant types password and refresh_token."


class InvalidScopeError(KeyturnError):
    code = wire.INVALID_SCOPE
    status = 400
    default_message = "Keyturn defines no scopes; leave `scope` out."


class InvalidClientError(KeyturnError):
    """RFC 6749 §5.2: client authentication failed (Keyturn knows only public clients)."""

    code = wire.INVALID_CLIENT
    status = 401
    default_message = "Client authentication failed."

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Basic realm="keyturn"'}
