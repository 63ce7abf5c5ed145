"""The identity providers' settings: an entry of KEYTURN_OIDC_PROVIDERS, and the provider
Keyturn signs users in with once the presets (Google, GitHub) are added."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

if TYPE_CHECKING:
    from keyturn.config import Settings

GOOGLE_ISSUER = "https://accounts.google.com"
PROVIDER_ID_SHAPE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
DEFAULT_OIDC_SCOPES = ("openid", "email", "profile")


class OidcProviderSettings(BaseModel):
    """One entry of KEYTURN_OIDC_PROVIDERS: an OpenID Connect provider found by discovery."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="In the callback URL: lower-case letters, digits, dashes.")
    name: str = Field(min_length=1, max_length=64, description="Shown on the buttons.")
    issuer: str = Field(
        description="Its `iss`; discovery is ISSUER/.well-known/openid-configuration."
    )
    client_id: str = Field(min_length=1, max_length=512)
    client_secret: SecretStr
    scopes: tuple[str, ...] = DEFAULT_OIDC_SCOPES

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not PROVIDER_ID_SHAPE.fullmatch(value):
            raise ValueError("must be 1-32 lower-case letters, digits or dashes")
        return value

    @field_validator("issuer")
    @classmethod
    def _check_issuer(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an https:// URL")
        if parts.query or parts.fragment:
            raise ValueError("must have no query or fragment")
        return value.rstrip("/")

    @field_validator("scopes")
    @classmethod
    def _check_scopes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if "openid" not in value:
            raise ValueError("must include openid")
        return value


@dataclass(frozen=True, slots=True)
class IdentityProvider:
    """A provider Keyturn signs users in with: generic OpenID Connect (Google is one), or
    GitHub's OAuth 2.0."""

    id: str
    name: str
    kind: Literal["oidc", "github"]
    client_id: str
    client_secret: SecretStr
    scopes: tuple[str, ...]
    issuer: str | None = None


def configured_providers(settings: Settings) -> tuple[IdentityProvider, ...]:
    """The providers `settings` configure, presets first, in the order the buttons show them."""
    found: list[IdentityProvider] = []
    if settings.google_client_id and settings.google_client_secret:
        found.append(
            IdentityProvider(
                id="google",
                name="Google",
                kind="oidc",
                client_id=settings.google_client_id,
                client_secret=settings.google_client_secret,
                scopes=DEFAULT_OIDC_SCOPES,
                issuer=GOOGLE_ISSUER,
            )
        )
    if settings.github_client_id and settings.github_client_secret:
        found.append(
            IdentityProvider(
                id="github",
                name="GitHub",
                kind="github",
                client_id=settings.github_client_id,
                client_secret=settings.github_client_secret,
                # GitHub's scopes: the profile, and the addresses with their verification.
                scopes=("read:user", "user:email"),
            )
        )
    found.extend(
        IdentityProvider(
            id=entry.id,
            name=entry.name,
            kind="oidc",
            client_id=entry.client_id,
            client_secret=entry.client_secret,
            scopes=entry.scopes,
            issuer=entry.issuer,
        )
        for entry in settings.oidc_providers
    )
    return tuple(found)


def provider_problems(settings: Settings) -> list[str]:
    """Sentences for provider settings that cannot work together."""
    problems: list[str] = []
    for preset in ("google", "github"):
        has_id = bool(getattr(settings, f"{preset}_client_id"))
        has_secret = getattr(settings, f"{preset}_client_secret") is not None
        if has_id != has_secret:
            name = preset.upper()
            problems.append(
                f"KEYTURN_{name}_CLIENT_ID and KEYTURN_{name}_CLIENT_SECRET must be set together."
            )
    ids = [provider.id for provider in configured_providers(settings)]
    duplicates = sorted({one for one in ids if ids.count(one) > 1})
    if duplicates:
        problems.append(
            f"KEYTURN_OIDC_PROVIDERS names provider {', '.join(duplicates)} twice"
            " (google and github are taken by the presets)."
        )
    for name in ("github_authorize_url", "github_token_url", "github_api_url"):
        if urlsplit(getattr(settings, name)).scheme not in ("http", "https"):
            problems.append(f"KEYTURN_{name.upper()} must be an http(s) URL.")
    return problems
