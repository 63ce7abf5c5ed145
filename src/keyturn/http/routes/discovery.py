"""/.well-known: the public keys (RFC 7517) and the server's metadata (RFC 8414)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from keyturn.http.deps import ServicesDep

router = APIRouter(tags=["discovery"])


@router.get("/.well-known/jwks.json")
async def jwks(services: ServicesDep) -> dict[str, Any]:
    """The public keys that verify access tokens, including retired keys whose tokens may
    still be live."""
    return services.keyring.jwks()


@router.get("/.well-known/oauth-authorization-server")
async def authorization_server_metadata(request: Request, services: ServicesDep) -> dict[str, Any]:
    """Authorization server metadata (RFC 8414)."""
    issuer = services.settings.effective_issuer
    return {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/oauth/token",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "grant_types_supported": ["password", "refresh_token"],
        "response_types_supported": [],
        # Public clients only: a client_id names the caller; no secret is checked.
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": [],
        "service_documentation": f"{issuer}/docs",
    }
