"""Settings from the environment (KEYTURN_*) and a `.env` file, validated once at start."""

from __future__ import annotations

import ipaddress
import re
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from keyturn.config.providers import (
    IdentityProvider,
    OidcProviderSettings,
    configured_providers,
    provider_problems,
)

Algorithm = Literal["EdDSA", "ES256", "RS256", "HS256"]
RefreshBinding = Literal["off", "user_agent", "network"]

# OWASP Password Storage Cheat Sheet, Argon2id: m=19 MiB, t=2, p=1.
OWASP_ARGON2_MEMORY_KIB = 19456
OWASP_ARGON2_TIME_COST = 2
MIN_HMAC_KEY_BYTES = 32
MIN_METRICS_TOKEN_CHARACTERS = 16
_FERNET_KEY = re.compile(r"[A-Za-z0-9_-]{43}=")
# Below this a session ends while its user is still reading the page: fine to try things out,
# a misconfiguration in production.
MIN_PRODUCTION_SESSION_SECONDS = 60


def default_database_url() -> str:
    return f"sqlite:///{Path('.keyturn') / 'keyturn.db'}"


class Settings(BaseSettings):
    """Every knob of a Keyturn server; each field is the variable KEYTURN_<NAME>."""

    model_config = SettingsConfigDict(
        env_prefix="KEYTURN_", env_file=".env", extra="ignore", frozen=True
    )

    env: Literal["development", "production"] = Field(
        "development", description="`production` refuses to start on an unsafe setting."
    )
    debug: bool = Field(False, description="Verbose errors in logs; refused in production.")
    database_url: str = Field(
        default_factory=default_database_url,
        description="sqlite:///PATH or postgresql://user:pass@host:port/db",
    )
    redis_url: str | None = Field(
        None, description="redis://host:port/N; shares rate limits and revocations."
    )

    access_ttl_seconds: int = Field(900, ge=1, le=86400)
    access_ttl_jitter: float = Field(
        0.05, ge=0, le=0.5, description="Each access token lives up to this share less."
    )
    # Any positive lifetime in development, so a demo can watch a refresh token expire;
    # production keeps a floor (production_problems).
    refresh_ttl_seconds: int = Field(2592000, ge=1, description="Idle lifetime, remember_me.")
    session_ttl_seconds: int = Field(86400, ge=1, description="Idle lifetime, no remember_me.")
    session_max_age_seconds: int = Field(7776000, ge=1, description="Absolute session lifetime.")
    refresh_reuse_grace_seconds: int = Field(10, ge=0, le=300)
    refresh_recovery_seconds: int = Field(
        60,
        ge=0,
        le=3600,
        description="After an instance starts, a rotated token whose successor was never used"
        " gets that successor again for this long (answers lost in a crash); 0: never.",
    )
    refresh_binding: RefreshBinding = Field(
        "off",
        description="Bind a session's refreshes to its User-Agent or to its network (IPv4 /24,"
        " IPv6 /48); a refresh from elsewhere ends the session.",
    )

    secrets_key: SecretStr | None = Field(
        None, description="Seals secrets at rest (signing keys, CSRF key); a Fernet key."
    )
    secrets_key_file: Path | None = Field(
        None, description="File holding the sealing key (first line) and older keys (next lines)."
    )
    secrets_old_keys: SecretStr | None = Field(
        None, description="Comma-separated older sealing keys: they unseal, never seal."
    )

    jwt_algorithm: Algorithm = "EdDSA"
    secret_key: SecretStr | None = Field(None, description="HMAC key for HS256, 32+ bytes.")
    issuer: str | None = Field(None, description="`iss` of access tokens; http://HOST:PORT.")
    key_rotation_days: int = Field(
        0, ge=0, le=3650, description="Upkeep rotates the signing key this old; 0: never."
    )
    audience: str = "keyturn"

    login_max_failures: int = Field(5, ge=1, description="Failed logins per account per window.")
    login_max_failures_per_ip: int = Field(
        100, ge=1, description="Failed logins per client address (IPv6: per /64) per window."
    )
    login_window_seconds: int = Field(900, ge=1)
    register_max_per_ip: int = Field(20, ge=1, description="Registrations per IP per window.")
    refresh_max_per_ip: int = Field(600, ge=1, description="Refreshes per client IP per minute.")
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated IPs/CIDRs whose X-Forwarded-For is believed.",
    )

    argon2_memory_kib: int = Field(OWASP_ARGON2_MEMORY_KIB, ge=8)
    argon2_time_cost: int = Field(OWASP_ARGON2_TIME_COST, ge=1)
    argon2_parallelism: int = Field(1, ge=1)
    hashing_threads: int | None = Field(
        None, ge=1, description="Threads that hash passwords; default: one per usable CPU."
    )
    hashing_queue_max: int = Field(
        32, ge=0, description="Requests waiting for password hashing before 503 `overloaded`."
    )
    max_sessions_per_user: int = Field(
        100, ge=1, description="Live sessions of one user; a login beyond ends the oldest."
    )

    max_body_bytes: int = Field(65536, ge=1024)
    public_origin: str | None = Field(
        None, description="https://auth.example.com; checked against Origin on cookie requests."
    )
    rp_name: str = Field(
        "Keyturn",
        min_length=1,
        max_length=64,
        description="The name passkey prompts show; the rp id is the host of the public origin.",
    )
    cookie_secure: bool | None = Field(
        None, description="Force Secure cookies on or off; default: on unless development http."
    )
    revocation_poll_seconds: float = Field(0.5, gt=0, le=5)
    revocation_max_staleness_seconds: float = Field(
        5.0, gt=0, description="Refuse access checks when revocations are older than this."
    )
    token_cache_size: int = Field(10000, ge=0)
    user_cache_size: int = Field(10000, ge=0)
    user_cache_seconds: float = Field(30.0, ge=0)
    purge_interval_seconds: int = Field(600, ge=1)
    log_level: str = "INFO"
    metrics_token: SecretStr | None = Field(
        None, description="Bearer token /metrics requires; unset: /metrics is open."
    )
    access_log: bool = Field(
        True, description="One JSON line per request (method, path, status, duration)."
    )

    smtp_url: SecretStr | None = Field(
        None,
        description="smtp://[user:pass@]host:port[?starttls=true] or smtps://...; unset in"
        " development: messages are written as .eml files under ./.keyturn/mail/.",
    )
    mail_from: str | None = Field(
        None, description='From: of every message, e.g. "Keyturn <no-reply@example.com>".'
    )
    smtp_timeout_seconds: float = Field(15.0, gt=0, le=300)
    mail_max_attempts: int = Field(10, ge=1, le=100, description="Tries before a mail fails.")
    mail_max_age_seconds: int = Field(
        86400, ge=60, description="A mail not delivered within this fails (its links are stale)."
    )
    require_verified_email: bool = Field(
        False, description="Refuse login (403 email_not_verified) until the address is verified."
    )
    reset_ttl_seconds: int = Field(1800, ge=60, le=86400, description="Password-reset links.")
    verify_ttl_seconds: int = Field(
        86400, ge=60, le=30 * 86400, description="Verification and email-change links."
    )
    email_max_per_address: int = Field(
        5, ge=1, description="Reset, verification or email-change mails per address per window."
    )
    email_max_per_ip: int = Field(
        30, ge=1, description="Forgot-password requests per client address per window."
    )
    email_window_seconds: int = Field(3600, ge=60)

    reauth_seconds: int = Field(
        600,
        ge=10,
        le=86400,
        description="How recent a login must be for sensitive changes (password, email, factors).",
    )
    mfa_encryption_key: SecretStr | None = Field(
        None,
        description="Fernet key sealing TOTP secrets; default: the key that seals other secrets.",
    )
    mfa_token_seconds: int = Field(
        300, ge=30, le=3600, description="How long a login waits for its second factor."
    )
    oidc_providers: list[OidcProviderSettings] = Field(
        default_factory=list,
        description="JSON list of {id, name, issuer, client_id, client_secret, scopes?}.",
    )
    google_client_id: str | None = Field(None, description="Sign in with Google (OIDC).")
    google_client_secret: SecretStr | None = None
    github_client_id: str | None = Field(None, description="Sign in with GitHub (OAuth 2.0).")
    github_client_secret: SecretStr | None = None
    github_authorize_url: str = "https://github.com/login/oauth/authorize"
    github_token_url: str = "https://github.com/login/oauth/access_token"  # noqa: S105 - a URL
    github_api_url: str = "https://api.github.com"
    provider_timeout_seconds: float = Field(
        10.0, gt=0, le=60, description="Each call to a provider (discovery, keys, token)."
    )
    provider_metadata_ttl_seconds: int = Field(
        3600, ge=1, description="How long a provider's discovery document and keys are kept."
    )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for entry in value:
            ipaddress.ip_network(entry, strict=False)
        return value

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        parts = urlsplit(value.get_secret_value())
        # The message names no part of the URL: it may carry the SMTP password.
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("must be smtp://[user:pass@]host:port or smtps://...")
        try:
            parts.port  # noqa: B018 - parsing the port raises on a non-number
        except ValueError:
            raise ValueError("has a port that is not a number") from None
        return value

    @field_validator("mfa_encryption_key")
    @classmethod
    def _check_mfa_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        # 32 bytes in url-safe base64 are 43 letters and one "="; the message shows no part
        # of the key.
        if not _FERNET_KEY.fullmatch(value.get_secret_value().strip()):
            raise ValueError("must be 32 random bytes in url-safe base64 (a Fernet key)")
        return value

    @field_validator("mail_from")
    @classmethod
    def _check_mail_from(cls, value: str | None) -> str | None:
        if not value:
            return None
        _name, address = parseaddr(value)
        if "@" not in address or any(c in value for c in "\r\n"):
            raise ValueError('must be an address, e.g. "Keyturn <no-reply@example.com>"')
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @property
    def identity_providers(self) -> tuple[IdentityProvider, ...]:
        """The configured providers, presets first, in the order the buttons show them."""
        return configured_providers(self)

    @property
    def effective_issuer(self) -> str:
        return self.issuer or "http://127.0.0.1:8000"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite:")

    def production_problems(self) -> list[str]:
        """Sentences naming each unsafe setting; production refuses to start on any."""
        problems: list[str] = []
        if self.env != "production":
            return problems
        if self.debug:
            problems.append("KEYTURN_DEBUG must be off in production.")
        if self.jwt_algorithm == "HS256":
            key = self.secret_key.get_secret_value() if self.secret_key else ""
            if len(key.encode()) < MIN_HMAC_KEY_BYTES:
                problems.append(
                    "KEYTURN_SECRET_KEY must hold at least 32 bytes when KEYTURN_JWT_ALGORITHM"
                    " is HS256."
                )
        if self.secrets_key is None and self.secrets_key_file is None:
            problems.append(
                "KEYTURN_SECRETS_KEY (or KEYTURN_SECRETS_KEY_FILE) must be set in production:"
                " it seals the signing keys and other secrets at rest."
            )
        if self.cookie_secure is False:
            problems.append("KEYTURN_COOKIE_SECURE must not be off in production.")
        if self.issuer and not self.issuer.startswith("https://"):
            problems.append("KEYTURN_ISSUER must be an https:// URL in production.")
        short = [
            f"KEYTURN_{name.upper()}"
            for name in ("refresh_ttl_seconds", "session_ttl_seconds", "session_max_age_seconds")
            if getattr(self, name) < MIN_PRODUCTION_SESSION_SECONDS
        ]
        if short:
            problems.append(
                f"{', '.join(short)} must be at least {MIN_PRODUCTION_SESSION_SECONDS} seconds"
                " in production (shorter lifetimes are for trying things out in development)."
            )
        if self.argon2_memory_kib < OWASP_ARGON2_MEMORY_KIB or (
            self.argon2_time_cost < OWASP_ARGON2_TIME_COST
        ):
            problems.append("KEYTURN_ARGON2_* must not be below OWASP's Argon2id parameters.")
        insecure = [
            provider.id
            for provider in self.identity_providers
            if provider.issuer and not provider.issuer.startswith("https://")
        ]
        if insecure:
            problems.append(
                f"KEYTURN_OIDC_PROVIDERS: the issuer of {', '.join(insecure)} must be an"
                " https:// URL in production."
            )
        if self.smtp_url is None or not self.mail_from:
            problems.append(
                "KEYTURN_SMTP_URL and KEYTURN_MAIL_FROM must be set in production:"
                " verification and password-reset mail cannot be sent without them."
            )
        return problems

    def configuration_problems(self) -> list[str]:
        """Sentences naming settings that cannot work in any environment."""
        problems: list[str] = []
        if self.jwt_algorithm == "HS256":
            key = self.secret_key.get_secret_value() if self.secret_key else ""
            if len(key.encode()) < MIN_HMAC_KEY_BYTES:
                problems.append(
                    "KEYTURN_JWT_ALGORITHM=HS256 needs KEYTURN_SECRET_KEY of at least 32 bytes."
                )
        if self.metrics_token is not None and (
            len(self.metrics_token.get_secret_value()) < MIN_METRICS_TOKEN_CHARACTERS
        ):
            problems.append("KEYTURN_METRICS_TOKEN must be at least 16 characters when set.")
        if self.session_ttl_seconds > self.session_max_age_seconds:
            problems.append("KEYTURN_SESSION_TTL_SECONDS exceeds KEYTURN_SESSION_MAX_AGE_SECONDS.")
        problems.extend(provider_problems(self))
        return problems

    @property
    def mail_origin(self) -> str:
        """Where the links in mail point: the public origin, else the issuer."""
        return (self.public_origin or self.effective_issuer).rstrip("/")

    @property
    def cookies_secure(self) -> bool:
        if self.cookie_secure is not None:
            return self.cookie_secure
        if self.env == "production":
            return True
        origin = self.public_origin or self.effective_issuer
        return origin.startswith("https://")
