"""Published keys verify our tokens with an ordinary JOSE library; HS256 publishes nothing."""

from __future__ import annotations

import jwt
import pytest

from tests.support.api import bearer, login
from tests.support.environment import TEST_ISSUER


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256", "RS256"])
async def test_jwks_verifies_access_tokens_with_pyjwt(make_api, algorithm: str) -> None:
    api = await make_api(jwt_algorithm=algorithm)
    tokens = await login(api)
    jwks = (await api.get("/.well-known/jwks.json")).json()
    header = jwt.get_unverified_header(tokens.access_token)
    (jwk,) = [key for key in jwks["keys"] if key["kid"] == header["kid"]]
    assert "d" not in jwk  # never the private half
    public_key = jwt.PyJWK(jwk).key
    claims = jwt.decode(
        tokens.access_token,
        public_key,
        algorithms=[algorithm],
        audience="keyturn",
        issuer=TEST_ISSUER,
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["sub"] == tokens.user["id"]
    assert header["typ"] == "at+jwt"


async def test_hs256_works_and_publishes_no_key(make_api) -> None:
    api = await make_api(jwt_algorithm="HS256", secret_key="k" * 32)
    tokens = await login(api)
    assert (await api.get("/api/auth/me", headers=bearer(tokens.access_token))).status_code == 200
    assert (await api.get("/.well-known/jwks.json")).json() == {"keys": []}


async def test_metadata_document_names_the_endpoints(api) -> None:
    metadata = (await api.get("/.well-known/oauth-authorization-server")).json()
    assert metadata["issuer"] == TEST_ISSUER
    assert metadata["jwks_uri"] == f"{TEST_ISSUER}/.well-known/jwks.json"
    assert metadata["token_endpoint"] == f"{TEST_ISSUER}/oauth/token"


async def test_docs_and_openapi_are_served(api) -> None:
    assert (await api.get("/docs")).status_code == 200
    spec = (await api.get("/openapi.json")).json()
    assert "/api/auth/login" in spec["paths"]
    assert "bearer" in spec["components"]["securitySchemes"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert operation.get("description") or operation.get("summary"), (method, path)
