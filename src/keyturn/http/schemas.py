"""Request and response bodies as the OpenAPI document shows them."""

from __future__ import annotations

import functools
import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from keyturn.core.audit import AuditEvent
from keyturn.core.sessions import Session, UserRecord

_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f]")


def _printable(value: str) -> str:
    """Refuse NUL, other control characters and lone surrogates: a database chokes on them."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError("contains characters that are not valid Unicode") from error
    if _CONTROL_CHARACTER.search(value):
        raise ValueError("contains control characters")
    return value


def _encodable(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError("contains characters that are not valid Unicode") from error
    if "\x00" in value:
        raise ValueError("contains a NUL character")
    return value


Text = Annotated[str, AfterValidator(_printable)]
Password = Annotated[str, Field(min_length=1, max_length=1024), AfterValidator(_encodable)]
TokenText = Annotated[str, Field(min_length=1, max_length=8192), AfterValidator(_printable)]


class Strict(BaseModel):
    # A field the API does not know is refused by name: dropped in silence, a typo
    # (`remember-me`) or a guess (`name`) would look accepted while doing nothing.
    model_config = ConfigDict(strict=True, extra="forbid")


class RegisterRequest(Strict):
    email: Annotated[Text, Field(max_length=320)]
    password: Password
    username: Annotated[Text, Field(max_length=64)] | None = None


class LoginRequest(Strict):
    email: Annotated[Text, Field(max_length=320)] | None = None
    username: Annotated[Text, Field(max_length=64)] | None = None
    password: Password
    remember_me: bool = True

    @model_validator(mode="after")
    def _one_identifier(self) -> LoginRequest:
        if not (self.email or self.username):
            raise ValueError("give an email or a username")
        return self

    @property
    def identifier(self) -> str:
        return self.email or self.username or ""


class RefreshRequest(Strict):
    refresh_token: TokenText | None = None


class LogoutRequest(Strict):
    refresh_token: TokenText | None = None


class PasswordChangeRequest(Strict):
    current_password: Password
    new_password: Password


class AccountDeleteRequest(Strict):
    current_password: Password


class EmailTokenRequest(Strict):
    token: TokenText


class ResendVerificationRequest(Strict):
    pass


class EmailChangeRequest(Strict):
    new_email: Annotated[Text, Field(max_length=320)]
    current_password: Password


class ForgotPasswordRequest(Strict):
    email: Annotated[Text, Field(max_length=320)]


class PasswordResetRequest(Strict):
    token: TokenText
    new_password: Password


TotpCode = Annotated[str, Field(min_length=1, max_length=16), AfterValidator(_printable)]
RecoveryCode = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_printable)]


class TotpConfirmRequest(Strict):
    code: TotpCode


class MfaVerifyRequest(Strict):
    mfa_token: TokenText
    code: TotpCode | None = None
    recovery_code: RecoveryCode | None = None

    @model_validator(mode="after")
    def _one_answer(self) -> MfaVerifyRequest:
        if (self.code is None) == (self.recovery_code is None):
            raise ValueError("give either a code or a recovery_code")
        return self


class ReauthenticateRequest(Strict):
    password: Password | None = None
    code: TotpCode | None = None
    recovery_code: RecoveryCode | None = None

    @model_validator(mode="after")
    def _one_answer(self) -> ReauthenticateRequest:
        given = [v for v in (self.password, self.code, self.recovery_code) if v is not None]
        if len(given) != 1:
            raise ValueError("give one of password, code or recovery_code")
        return self


class TotpSetupOut(BaseModel):
    secret: str = Field(description="Base32, for typing into the app by hand.")
    otpauth_uri: str
    qr_svg: str = Field(description="The otpauth URI as a QR code, an inline SVG document.")


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str] = Field(description="Shown this once; each works once.")


class AccessTokenOut(BaseModel):
    access_token: str | None = Field(None, description="Absent in browser mode (a cookie).")
    token_type: str = "Bearer"
    expires_in: int


class MfaRequiredProblem(BaseModel):
    """A 401 of a login: `invalid_credentials`, or `mfa_required` with the two fields below."""

    error: str = "mfa_required"
    message: str
    mfa_token: str | None = Field(
        None, description="With `mfa_required`: for POST /api/auth/mfa/verify, within 300 s."
    )
    methods: list[str] | None = Field(
        None, description="With `mfa_required`: any of `totp`, `recovery_code`, `passkey`."
    )


class Accepted(BaseModel):
    message: str


class AdminPasswordRequest(Strict):
    new_password: Password


class RolesRequest(Strict):
    roles: list[Annotated[Text, Field(max_length=32)]] = Field(max_length=16)


class UserOut(BaseModel):
    id: str
    email: str
    username: str | None
    roles: list[str]
    created_at: datetime
    email_verified: bool
    mfa_enabled: bool

    @classmethod
    def of(cls, user: UserRecord) -> UserOut:
        return cls(
            id=user.id,
            email=user.email,
            username=user.username,
            roles=list(user.roles),
            created_at=user.created_at,
            email_verified=user.email_verified,
            mfa_enabled=user.mfa_enabled,
        )


class AdminUserOut(UserOut):
    disabled: bool

    @classmethod
    def of(cls, user: UserRecord) -> AdminUserOut:
        return cls(**UserOut.of(user).model_dump(), disabled=user.is_disabled)


class UserEnvelope(BaseModel):
    user: UserOut


@functools.lru_cache(maxsize=4096)
def user_envelope_json(user: UserRecord) -> bytes:
    """`{"user": ...}` for this account, rendered once per version of its record: it is the
    reply to every token check (`GET /api/auth/me`), and rendering costs more than the check."""
    return UserEnvelope(user=UserOut.of(user)).model_dump_json().encode()


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    expires_in: int


class LoginResponse(TokenPair):
    user: UserOut


class CookieLoginResponse(BaseModel):
    token_type: str = "cookie"
    expires_in: int
    user: UserOut


class SessionOut(BaseModel):
    id: str
    created_at: datetime
    last_used_at: datetime = Field(
        description="When the session last got tokens: its login or its latest refresh. Requests"
        " made with an access token are not recorded, so a session in use shows a time at most"
        " one access-token lifetime old."
    )
    expires_at: datetime
    user_agent: str | None
    ip: str | None
    current: bool

    @classmethod
    def of(cls, session: Session, *, current_session_id: str) -> SessionOut:
        return cls(
            id=session.id,
            created_at=session.created_at,
            last_used_at=session.last_used_at,
            expires_at=min(session.idle_expires_at, session.absolute_expires_at),
            user_agent=session.user_agent,
            ip=session.ip,
            current=session.id == current_session_id,
        )


class SessionList(BaseModel):
    sessions: list[SessionOut]


class UserPage(BaseModel):
    users: list[AdminUserOut]
    total: int
    limit: int
    offset: int


class Problem(BaseModel):
    error: str
    message: str


class AuditEventOut(BaseModel):
    id: int
    occurred_at: datetime
    event: str
    user_id: str | None
    session_id: str | None
    ip: str | None
    user_agent: str | None
    detail: dict[str, Any] | None

    @classmethod
    def of(cls, item: AuditEvent) -> AuditEventOut:
        return cls(
            id=item.id,
            occurred_at=item.occurred_at,
            event=item.event,
            user_id=item.user_id,
            session_id=item.session_id,
            ip=item.ip,
            user_agent=item.user_agent,
            detail=item.detail,
        )


class AuditPage(BaseModel):
    events: list[AuditEventOut]
    total: int
    limit: int
    offset: int


class ProviderOut(BaseModel):
    id: str = Field(description="Used in /api/auth/oidc/{provider}/start.")
    name: str


class ProviderList(BaseModel):
    providers: list[ProviderOut]


class IdentityOut(BaseModel):
    id: str
    provider: str
    email: str | None = Field(description="The address the provider gave at the last sign-in.")
    created_at: datetime


class IdentityList(BaseModel):
    identities: list[IdentityOut]


class LinkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    return_to: Text | None = Field(
        None, max_length=512, description="A path on this site to return to; /dashboard."
    )


class LinkStarted(BaseModel):
    location: str = Field(description="The provider's authorization URL: navigate there.")
