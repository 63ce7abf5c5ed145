"""Names that travel on the wire: error codes, claims, headers, cookies, token types.

Standard library only: the client SDK and the verifier import this module too.
"""

from typing import Final

# Error codes (the `error` member of every 4xx/5xx body).
INVALID_REQUEST: Final = "invalid_request"
PAYLOAD_TOO_LARGE: Final = "payload_too_large"
NOT_FOUND: Final = "not_found"
METHOD_NOT_ALLOWED: Final = "method_not_allowed"
INTERNAL_ERROR: Final = "internal_error"
SERVICE_UNAVAILABLE: Final = "service_unavailable"
OVERLOADED: Final = "overloaded"

INVALID_CREDENTIALS: Final = "invalid_credentials"
ACCOUNT_DISABLED: Final = "account_disabled"
EMAIL_NOT_VERIFIED: Final = "email_not_verified"
TOO_MANY_REQUESTS: Final = "too_many_requests"
INVALID_EMAIL: Final = "invalid_email"
WEAK_PASSWORD: Final = "weak_password"
INVALID_USERNAME: Final = "invalid_username"
EMAIL_TAKEN: Final = "email_taken"
USERNAME_TAKEN: Final = "username_taken"

MISSING_TOKEN: Final = "missing_token"
TOKEN_EXPIRED: Final = "token_expired"
INVALID_TOKEN: Final = "invalid_token"
INSUFFICIENT_ROLE: Final = "insufficient_role"
CSRF_FAILED: Final = "csrf_failed"

INVALID_REFRESH_TOKEN: Final = "invalid_refresh_token"
REFRESH_TOKEN_EXPIRED: Final = "refresh_token_expired"
REFRESH_TOKEN_REUSED: Final = "refresh_token_reused"

# Sign in with a provider: API refusals, and the codes a failed callback sends to
# /login?error=CODE (or /dashboard?error=CODE while linking).
INVALID_RETURN_TO: Final = "invalid_return_to"
PROVIDER_NOT_FOUND: Final = "provider_not_found"
IDENTITY_NOT_FOUND: Final = "identity_not_found"
LAST_SIGN_IN_METHOD: Final = "last_sign_in_method"
ACCESS_DENIED: Final = "access_denied"
PROVIDER_ERROR: Final = "provider_error"
PROVIDER_UNAVAILABLE: Final = "provider_unavailable"
INVALID_STATE: Final = "invalid_state"
INVALID_ID_TOKEN: Final = "invalid_id_token"
EMAIL_REQUIRED: Final = "email_required"
ACCOUNT_EXISTS: Final = "account_exists"
IDENTITY_IN_USE: Final = "identity_in_use"

SESSION_NOT_FOUND: Final = "session_not_found"
USER_NOT_FOUND: Final = "user_not_found"
LAST_ADMIN: Final = "last_admin"

INVALID_CREDENTIAL: Final = "invalid_credential"  # a WebAuthn credential (passkey)
PASSKEY_NOT_FOUND: Final = "passkey_not_found"
# Second factors and step-up.
MFA_REQUIRED: Final = "mfa_required"
INVALID_CODE: Final = "invalid_code"
INVALID_MFA_TOKEN: Final = "invalid_mfa_token"
REAUTHENTICATION_REQUIRED: Final = "reauthentication_required"
MFA_ALREADY_ENABLED: Final = "mfa_already_enabled"
MFA_NOT_ENABLED: Final = "mfa_not_enabled"
# RFC 9470 §3: the token's authentication is too weak for this resource.
INSUFFICIENT_USER_AUTHENTICATION: Final = "insufficient_user_authentication"

# OAuth 2.0 error codes (RFC 6749 §5.2) the /oauth routes answer with.
INVALID_GRANT: Final = "invalid_grant"
INVALID_CLIENT: Final = "invalid_client"
INVALID_SCOPE: Final = "invalid_scope"
UNSUPPORTED_GRANT_TYPE: Final = "unsupported_grant_type"
SERVER_ERROR: Final = "server_error"
TEMPORARILY_UNAVAILABLE: Final = "temporarily_unavailable"

# Access-token header and claims (RFC 7519, RFC 9068).
ACCESS_TOKEN_TYP: Final = "at+jwt"
CLAIM_ISSUER: Final = "iss"
CLAIM_SUBJECT: Final = "sub"
CLAIM_AUDIENCE: Final = "aud"
CLAIM_EXPIRES: Final = "exp"
CLAIM_ISSUED_AT: Final = "iat"
CLAIM_NOT_BEFORE: Final = "nbf"
CLAIM_TOKEN_ID: Final = "jti"
CLAIM_SESSION_ID: Final = "sid"
CLAIM_CLIENT_ID: Final = "client_id"
CLAIM_ROLES: Final = "roles"
CLAIM_AMR: Final = "amr"
CLAIM_AUTH_TIME: Final = "auth_time"

# Authentication method references (RFC 8176) an `amr` claim may hold.
AMR_PASSWORD: Final = "pwd"
AMR_OTP: Final = "otp"
AMR_HARDWARE_KEY: Final = "hwk"
AMR_SOFTWARE_KEY: Final = "swk"
AMR_MFA: Final = "mfa"
AMR_FEDERATED: Final = "fed"

# Second-factor methods a login's `mfa_required` answer may offer.
MFA_METHOD_TOTP: Final = "totp"
MFA_METHOD_RECOVERY_CODE: Final = "recovery_code"
MFA_METHOD_PASSKEY: Final = "passkey"

TOKEN_TYPE_BEARER: Final = "Bearer"
REFRESH_TOKEN_PREFIX: Final = "ktr_"

# Headers.
HEADER_AUTH_MODE: Final = "x-auth-mode"
AUTH_MODE_COOKIE: Final = "cookie"
HEADER_CSRF: Final = "x-csrf-token"
HEADER_REQUEST_ID: Final = "x-request-id"

# Cookies: bare names in development over plain http, prefixed otherwise.
COOKIE_ACCESS: Final = "access_token"
COOKIE_REFRESH: Final = "refresh_token"
COOKIE_CSRF: Final = "csrf_token"
COOKIE_LANG: Final = "lang"
COOKIE_OIDC_STATE: Final = "oidc_state"
HOST_PREFIX: Final = "__Host-"
SECURE_PREFIX: Final = "__Secure-"
REFRESH_COOKIE_PATH: Final = "/api/auth"

ROLE_ADMIN: Final = "admin"
ROLE_USER: Final = "user"
DEFAULT_CLIENT_ID: Final = "keyturn"

# Redis keys shared by the server (writer) and keyturn.verify (reader). Each revoked-* key holds
# "1" with a TTL until no access token it covers can still be valid.
REDIS_REVOKED_SESSION_PREFIX: Final = "keyturn:revoked:sid:"
REDIS_REVOKED_TOKEN_PREFIX: Final = "keyturn:revoked:jti:"
REDIS_REVOCATION_CHANNEL: Final = "keyturn:revocations"
