"""Talking to identity providers: OpenID Connect by discovery (Google is one), and GitHub's
OAuth 2.0. Authlib builds the authorization request and exchanges the code (with PKCE);
PyJWT verifies the ID token against the provider's published keys.

Every call has a timeout; a provider that cannot be reached (or answers 5xx, or garbage where
a document should be) raises ProviderUnavailableError, never anything a route would turn into
a 500.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any, Protocol

import httpx2
import jwt
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client

from keyturn.clock import Clock
from keyturn.config import Settings
from keyturn.config.providers import GOOGLE_ISSUER, IdentityProvider
from keyturn.core.federation import InvalidIdTokenError, ProviderError, ProviderUnavailableError

# Signatures an ID token may carry: asymmetric only. `none` and HS256 (keyed with the client
# secret, which the provider's other clients do not know but we must not trust either) never.
ID_TOKEN_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"}
)
CLOCK_SKEW_SECONDS = 120
# An unknown kid makes us fetch the keys again (the provider rotated), at most this often, so
# a stream of forged tokens cannot make us hammer the provider.
KEYS_REFETCH_SECONDS = 60
MAX_DOCUMENT_BYTES = 512 * 1024


@dataclass(frozen=True, slots=True)
class ProviderIdentity:
    """Who the provider says signed in: a subject that never changes, and an address."""

    subject: str
    email: str | None
    email_verified: bool


class ProviderClient(Protocol):
    async def authorization_url(
        self, *, redirect_uri: str, state: str, nonce: str, code_verifier: str
    ) -> str: ...

    async def identity_of(
        self, *, code: str, redirect_uri: str, code_verifier: str, nonce: str
    ) -> ProviderIdentity: ...

    async def close(self) -> None: ...


class _Http:
    """The HTTP side shared by both kinds: one pooled client with timeouts, JSON documents."""

    def __init__(self, provider: IdentityProvider, settings: Settings) -> None:
        self.provider = provider
        self._timeout = httpx2.Timeout(settings.provider_timeout_seconds)
        self._oauth: AsyncOAuth2Client | None = None

    @property
    def oauth(self) -> AsyncOAuth2Client:
        if self._oauth is None:
            self._oauth = AsyncOAuth2Client(
                self.provider.client_id,
                self.provider.client_secret.get_secret_value(),
                scope=" ".join(self.provider.scopes),
                # GitHub reads the client's credentials from the form, as its documentation
                # shows; OpenID Connect providers all take HTTP Basic (OIDC Core §9).
                token_endpoint_auth_method=(
                    "client_secret_post"
                    if self.provider.kind == "github"
                    else "client_secret_basic"
                ),
                code_challenge_method="S256",
                timeout=self._timeout,
                follow_redirects=False,
            )
        return self._oauth

    async def get_json(self, url: str, *, headers: dict[str, str] | None = None) -> Any:
        try:
            response = await self.oauth.request("GET", url, headers=headers, withhold_token=True)
        except httpx2.HTTPError as error:
            raise ProviderUnavailableError() from error
        if response.status_code != 200 or len(response.content) > MAX_DOCUMENT_BYTES:
            raise ProviderUnavailableError(f"{url} answered {response.status_code}.")
        try:
            return response.json()
        except ValueError as error:
            raise ProviderUnavailableError(f"{url} sent no JSON.") from error

    async def exchange_code(
        self, token_url: str, *, code: str, redirect_uri: str, code_verifier: str
    ) -> dict[str, Any]:
        """RFC 6749 §4.1.3 with RFC 7636's verifier; the client authenticates with its secret."""
        try:
            token: dict[str, Any] = await self.oauth.fetch_token(
                token_url,
                grant_type="authorization_code",
                code=code,
                redirect_uri=redirect_uri,
                code_verifier=code_verifier,
            )
        except OAuthError as error:  # invalid_grant: a used, swapped or expired code
            raise ProviderError(f"The token endpoint refused: {error.error}.") from error
        except httpx2.HTTPError as error:
            raise ProviderUnavailableError() from error
        except ValueError as error:
            raise ProviderError("The token endpoint sent no JSON object.") from error
        return token

    def authorization_url(
        self, endpoint: str, *, redirect_uri: str, state: str, code_verifier: str, **extra: str
    ) -> str:
        url, _state = self.oauth.create_authorization_url(
            endpoint, state=state, code_verifier=code_verifier, redirect_uri=redirect_uri, **extra
        )
        return str(url)

    async def close(self) -> None:
        if self._oauth is not None:
            await self._oauth.aclose()
            self._oauth = None


class OidcClient:
    """OpenID Connect Core 1.0, authorization code flow, the provider found by discovery."""

    def __init__(self, provider: IdentityProvider, settings: Settings, clock: Clock) -> None:
        assert provider.issuer is not None  # noqa: S101 - every OIDC provider has one
        self._issuer = provider.issuer
        self._http = _Http(provider, settings)
        self._client_id = provider.client_id
        self._clock = clock
        self._ttl = settings.provider_metadata_ttl_seconds
        self._metadata: tuple[dict[str, Any], float] | None = None
        self._keys: tuple[jwt.PyJWKSet, float] | None = None
        self._keys_refetched_at = float("-inf")
        # Google's tokens may name their issuer without the scheme (its documentation says so).
        self._accepted_issuers = [self._issuer]
        if self._issuer == GOOGLE_ISSUER:
            self._accepted_issuers.append("accounts.google.com")

    async def _document(self) -> dict[str, Any]:
        now = self._clock.timestamp()
        if self._metadata is not None and now - self._metadata[1] < self._ttl:
            return self._metadata[0]
        document = await self._http.get_json(f"{self._issuer}/.well-known/openid-configuration")
        # OpenID Connect Discovery §4.3: the document must name the issuer we asked.
        if not isinstance(document, dict) or document.get("issuer") != self._issuer:
            raise ProviderUnavailableError("The discovery document names another issuer.")
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(document.get(name), str):
                raise ProviderUnavailableError(f"The discovery document has no {name}.")
        self._metadata = (document, now)
        return document

    async def _key_set(self, *, refetch: bool) -> jwt.PyJWKSet:
        now = self._clock.timestamp()
        fresh = self._keys is not None and now - self._keys[1] < self._ttl
        if self._keys is not None and fresh and not refetch:
            return self._keys[0]
        if refetch and self._keys is not None:
            if now - self._keys_refetched_at < KEYS_REFETCH_SECONDS:
                return self._keys[0]
            self._keys_refetched_at = now
        document = await self._document()
        keys = await self._http.get_json(document["jwks_uri"])
        try:
            key_set = jwt.PyJWKSet.from_dict(keys if isinstance(keys, dict) else {})
        except jwt.PyJWTError as error:
            raise ProviderUnavailableError("The provider publishes no usable key.") from error
        self._keys = (key_set, now)
        return key_set

    async def _signing_key(self, kid: object) -> jwt.PyJWK:
        for refetch in (False, True):
            key_set = await self._key_set(refetch=refetch)
            if kid is None and len(key_set.keys) == 1:
                return key_set.keys[0]
            for key in key_set.keys:
                if key.key_id == kid:
                    return key
        raise InvalidIdTokenError("The ID token's key is not the provider's.")

    async def authorization_url(
        self, *, redirect_uri: str, state: str, nonce: str, code_verifier: str
    ) -> str:
        document = await self._document()
        return self._http.authorization_url(
            document["authorization_endpoint"],
            redirect_uri=redirect_uri,
            state=state,
            code_verifier=code_verifier,
            nonce=nonce,
        )

    async def identity_of(
        self, *, code: str, redirect_uri: str, code_verifier: str, nonce: str
    ) -> ProviderIdentity:
        document = await self._document()
        token = await self._http.exchange_code(
            document["token_endpoint"],
            code=code,
            redirect_uri=redirect_uri,
            code_verifier=code_verifier,
        )
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise InvalidIdTokenError("The token endpoint sent no ID token.")
        claims = await self.verify_id_token(id_token, nonce=nonce, document=document)
        email = claims.get("email")
        return ProviderIdentity(
            subject=claims["sub"],
            email=email if isinstance(email, str) and email else None,
            # Only a JSON true counts: "true", 1 or a missing claim vouch for nothing.
            email_verified=claims.get("email_verified") is True,
        )

    async def verify_id_token(
        self, id_token: str, *, nonce: str, document: dict[str, Any]
    ) -> dict[str, Any]:
        """OpenID Connect Core §3.1.3.7: signature by the provider's key (kid), iss, aud
        (and azp), exp and iat against our clock, and the nonce of this browser's sign-in."""
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError as error:
            raise InvalidIdTokenError() from error
        algorithm = header.get("alg")
        offered = document.get("id_token_signing_alg_values_supported") or ["RS256"]
        if algorithm not in ID_TOKEN_ALGORITHMS or algorithm not in offered:
            raise InvalidIdTokenError("The ID token's algorithm is not accepted.")
        key = await self._signing_key(header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key.key,
                algorithms=[algorithm],
                audience=self._client_id,
                issuer=self._accepted_issuers,
                # Times are checked below against the server's clock, not the library's.
                options={
                    "require": ["iss", "sub", "aud", "exp", "iat"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError as error:
            raise InvalidIdTokenError() from error
        now = self._clock.timestamp()
        if not _is_number(claims["exp"]) or claims["exp"] + CLOCK_SKEW_SECONDS <= now:
            raise InvalidIdTokenError("The ID token has expired.")
        if not _is_number(claims["iat"]) or claims["iat"] - CLOCK_SKEW_SECONDS > now:
            raise InvalidIdTokenError("The ID token was issued in the future.")
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        azp = claims.get("azp")
        if (len(audiences) > 1 or azp is not None) and azp != self._client_id:
            raise InvalidIdTokenError("The ID token was issued to another client.")
        sent = claims.get("nonce")
        if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), nonce.encode()):
            raise InvalidIdTokenError("The ID token belongs to another sign-in.")
        if not isinstance(claims["sub"], str) or not claims["sub"] or len(claims["sub"]) > 255:
            raise InvalidIdTokenError("The ID token names no subject.")
        return claims

    async def close(self) -> None:
        await self._http.close()


class GitHubClient:
    """GitHub's OAuth 2.0 apps: no ID token, so the API says who signed in. The subject is
    GitHub's numeric user id (a login name can be renamed and taken by someone else)."""

    def __init__(self, provider: IdentityProvider, settings: Settings) -> None:
        self._http = _Http(provider, settings)
        self._authorize_url = settings.github_authorize_url
        self._token_url = settings.github_token_url
        self._api_url = settings.github_api_url.rstrip("/")

    async def authorization_url(
        self, *, redirect_uri: str, state: str, nonce: str, code_verifier: str
    ) -> str:
        del nonce  # OAuth 2.0 has no ID token to carry it; state and PKCE bind the flow
        return self._http.authorization_url(
            self._authorize_url, redirect_uri=redirect_uri, state=state, code_verifier=code_verifier
        )

    async def identity_of(
        self, *, code: str, redirect_uri: str, code_verifier: str, nonce: str
    ) -> ProviderIdentity:
        token = await self._http.exchange_code(
            self._token_url, code=code, redirect_uri=redirect_uri, code_verifier=code_verifier
        )
        access_token = token.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise ProviderError("GitHub sent no access token.")
        headers = {
            "Authorization": f"Bearer {access_token}",
            "Accept": "application/vnd.github+json",
        }
        user = await self._http.get_json(f"{self._api_url}/user", headers=headers)
        user_id = user.get("id") if isinstance(user, dict) else None
        if not isinstance(user_id, int) or isinstance(user_id, bool) or user_id <= 0:
            raise ProviderError("GitHub did not say who signed in.")
        emails = await self._http.get_json(f"{self._api_url}/user/emails", headers=headers)
        primary = next(
            (
                entry
                for entry in (emails if isinstance(emails, list) else [])
                if isinstance(entry, dict)
                and entry.get("primary") is True
                and isinstance(entry.get("email"), str)
            ),
            None,
        )
        return ProviderIdentity(
            subject=str(user_id),
            email=primary["email"] if primary else None,
            email_verified=bool(primary) and primary.get("verified") is True,  # type: ignore[union-attr]
        )

    async def close(self) -> None:
        await self._http.close()


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def client_for(provider: IdentityProvider, settings: Settings, clock: Clock) -> ProviderClient:
    if provider.kind == "github":
        return GitHubClient(provider, settings)
    return OidcClient(provider, settings, clock)
