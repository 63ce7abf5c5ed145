"""The OAuth 2.0 face: /oauth/token (RFC 6749) and /oauth/revoke (RFC 7009), errors per §5.2."""

from __future__ import annotations

import base64

import httpx
import jwt
import pytest

from keyturn.clock import FrozenClock
from tests.support.api import DEFAULT_PASSWORD, bearer, error_of, login, register

FORM = {"content-type": "application/x-www-form-urlencoded"}


async def password_grant(
    api: httpx.AsyncClient, username: str = "ada@example.com", **extra: str
) -> httpx.Response:
    data = {"grant_type": "password", "username": username, "password": DEFAULT_PASSWORD, **extra}
    return await api.post("/oauth/token", data=data)


def oauth_error(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert body["error_description"] == body["message"]
    return response.status_code, body["error"]


async def test_password_grant_answers_per_rfc6749_5_1(api: httpx.AsyncClient) -> None:
    """The password grant returns a Bearer token response that is never cached."""
    await register(api, "ada@example.com")

    response = await password_grant(api, client_id="billing-cli")

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "Bearer"
    assert 0 < body["expires_in"] <= 900
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == "billing-cli"
    me = await api.get("/api/auth/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200


async def test_password_grant_accepts_a_username(api: httpx.AsyncClient) -> None:
    """`username` may hold the account's username as well as its email."""
    await register(api, "grace@example.com", username="grace")
    assert (await password_grant(api, username="grace")).status_code == 200


async def test_swagger_authorize_button_request_works(api: httpx.AsyncClient) -> None:
    """The request the /docs Authorize button sends (Basic with empty client credentials,
    an empty scope) logs in."""
    await register(api, "ada@example.com")
    basic = base64.b64encode(b":").decode()
    response = await api.post(
        "/oauth/token",
        content="grant_type=password&scope=&username=ada%40example.com&password="
        + DEFAULT_PASSWORD.replace(" ", "+"),
        headers={**FORM, "Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 200, response.text


async def test_refresh_grant_rotates_and_detects_reuse(
    api: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """refresh_token rotates like /api/auth/refresh; a replay after the grace window is
    invalid_grant and ends the session."""
    await register(api, "ada@example.com")
    first = (await password_grant(api)).json()

    renewed = await api.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
    )
    assert renewed.status_code == 200
    assert renewed.headers["cache-control"] == "no-store"
    second = renewed.json()
    assert second["refresh_token"] != first["refresh_token"]

    clock.advance(seconds=30)
    replay = await api.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
    )
    assert oauth_error(replay) == (400, "invalid_grant")
    me = await api.get("/api/auth/me", headers=bearer(second["access_token"]))
    assert error_of(me) == (401, "invalid_token")


async def test_json_and_oauth_refresh_are_one_rotation(api: httpx.AsyncClient) -> None:
    """A refresh token rotated by the JSON API is a rotated token for the OAuth face too."""
    tokens = await login(api)
    json_refresh = await api.post("/api/auth/refresh", json={"refresh_token": tokens.refresh_token})
    assert json_refresh.status_code == 200
    oauth_refresh = await api.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens.refresh_token},
    )
    # Within the grace window both faces hand out the same successor.
    assert oauth_refresh.status_code == 200
    assert oauth_refresh.json()["refresh_token"] == json_refresh.json()["refresh_token"]


@pytest.mark.parametrize("username", ["ada@example.com", "nobody@example.com"])
async def test_wrong_password_is_invalid_grant(api: httpx.AsyncClient, username: str) -> None:
    """A wrong password and an unknown account both read invalid_grant, with the same text."""
    await register(api, "ada@example.com")
    response = await api.post(
        "/oauth/token",
        data={"grant_type": "password", "username": username, "password": "not the password"},
    )
    assert oauth_error(response) == (400, "invalid_grant")
    assert response.json()["error_description"] == "The email, username or password is incorrect."


async def test_lockout_is_shared_with_the_json_api(api: httpx.AsyncClient) -> None:
    """Failures on /api/auth/login count for /oauth/token: 429 with Retry-After past the limit."""
    await register(api, "ada@example.com")
    for _ in range(5):
        failed = await api.post(
            "/api/auth/login", json={"email": "ada@example.com", "password": "wrong password"}
        )
        assert failed.status_code == 401

    response = await password_grant(api)

    assert oauth_error(response) == (429, "too_many_requests")
    assert int(response.headers["retry-after"]) > 0


async def test_disabled_account_is_invalid_grant(api: httpx.AsyncClient) -> None:
    """A disabled account cannot log in through the OAuth face either."""
    user = await register(api, "ada@example.com")
    services = api.app.state.services  # type: ignore[attr-defined]
    services.admin.set_disabled(user["id"], True)
    assert oauth_error(await password_grant(api)) == (400, "invalid_grant")


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
        ({"grant_type": "authorization_code", "code": "x"}, "unsupported_grant_type"),
        ({}, "invalid_request"),
        ({"grant_type": ""}, "invalid_request"),
        ({"grant_type": "password", "username": "ada@example.com"}, "invalid_request"),
        ({"grant_type": "password", "password": "x"}, "invalid_request"),
        ({"grant_type": "refresh_token"}, "invalid_request"),
        ({"grant_type": "refresh_token", "refresh_token": "not-a-token"}, "invalid_grant"),
        (
            {"grant_type": "password", "username": "a", "password": "b", "scope": "read"},
            "invalid_scope",
        ),
    ],
)
async def test_token_request_errors(
    api: httpx.AsyncClient, data: dict[str, str], code: str
) -> None:
    """Each malformed or refused token request gets its RFC 6749 §5.2 code and 400."""
    response = await api.post("/oauth/token", data=data)
    assert oauth_error(response) == (400, code)
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "content",
    [
        b"grant_type=password&grant_type=refresh_token",  # RFC 6749 §3.1: no repeats
        b"grant_type=password&username=%ff%fe&password=x",  # not UTF-8
        b"grant_type=password&username=a%00b&password=x",  # NUL
        "grant_type=password&username=\u00e9&password=x".encode(),  # raw non-ASCII
        b"grant_type=password&username=" + b"a" * 400 + b"&password=x",
        b"&".join(b"f%d=1" % n for n in range(40)),
    ],
)
async def test_malformed_forms_are_invalid_request(api: httpx.AsyncClient, content: bytes) -> None:
    """Odd encodings and repeated parameters get 400 invalid_request, never a 5xx."""
    response = await api.post("/oauth/token", content=content, headers=FORM)
    assert oauth_error(response) == (400, "invalid_request")


async def test_json_body_is_invalid_request(api: httpx.AsyncClient) -> None:
    """The token endpoint takes a form only (RFC 6749 §3.2)."""
    response = await api.post("/oauth/token", json={"grant_type": "password"})
    assert oauth_error(response) == (400, "invalid_request")


async def test_client_secret_is_invalid_client(api: httpx.AsyncClient) -> None:
    """A client secret cannot be checked (public clients only): 401 invalid_client."""
    await register(api, "ada@example.com")
    in_body = await password_grant(api, client_id="app", client_secret="s3cret")
    assert oauth_error(in_body) == (401, "invalid_client")
    basic = base64.b64encode(b"app:s3cret").decode()
    in_header = await api.post(
        "/oauth/token",
        data={"grant_type": "password", "username": "ada@example.com", "password": "x"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert oauth_error(in_header) == (401, "invalid_client")
    assert in_header.headers["www-authenticate"].startswith("Basic")


@pytest.mark.parametrize(
    "authorization", ["Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Digest x"]
)
async def test_malformed_client_authentication_is_invalid_client(
    api: httpx.AsyncClient, authorization: str
) -> None:
    response = await api.post(
        "/oauth/token",
        data={"grant_type": "password", "username": "a", "password": "b"},
        headers={"Authorization": authorization},
    )
    assert oauth_error(response) == (401, "invalid_client")


async def test_bad_client_id_is_invalid_client(api: httpx.AsyncClient) -> None:
    response = await password_grant(api, client_id="has spaces and <tags>")
    assert oauth_error(response) == (401, "invalid_client")


async def test_wrong_method_and_huge_body_are_4xx(api: httpx.AsyncClient) -> None:
    assert (await api.get("/oauth/token")).status_code == 405
    huge = await api.post("/oauth/token", content=b"a=" + b"b" * 200_000, headers=FORM)
    assert huge.status_code == 413


async def test_revoking_a_refresh_token_ends_the_session(api: httpx.AsyncClient) -> None:
    """RFC 7009: revoking the refresh token ends its session, access tokens included."""
    tokens = await login(api)

    response = await api.post(
        "/oauth/revoke",
        data={"token": tokens.refresh_token, "token_type_hint": "refresh_token"},
    )

    assert response.status_code == 200
    me = await api.get("/api/auth/me", headers=bearer(tokens.access_token))
    assert error_of(me) == (401, "invalid_token")
    again = await api.post(
        "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
    )
    assert oauth_error(again) == (400, "invalid_grant")


async def test_revoking_an_access_token_revokes_only_it(api: httpx.AsyncClient) -> None:
    """An access token is revoked by its jti; its session's refresh token still works."""
    tokens = await login(api)

    # A wrong hint is no obstacle (RFC 7009 §2.1).
    response = await api.post(
        "/oauth/revoke", data={"token": tokens.access_token, "token_type_hint": "refresh_token"}
    )

    assert response.status_code == 200
    me = await api.get("/api/auth/me", headers=bearer(tokens.access_token))
    assert error_of(me) == (401, "invalid_token")
    renewed = await api.post(
        "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
    )
    assert renewed.status_code == 200
    fresh = await api.get("/api/auth/me", headers=bearer(renewed.json()["access_token"]))
    assert fresh.status_code == 200


@pytest.mark.parametrize(
    "token", ["ktr_unknown", "not-a-token", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "x" * 8000]
)
async def test_revoking_an_unknown_token_is_200(api: httpx.AsyncClient, token: str) -> None:
    """RFC 7009 §2.2: an invalid token is no error."""
    response = await api.post("/oauth/revoke", data={"token": token})
    assert response.status_code == 200


async def test_revoke_without_token_is_invalid_request(api: httpx.AsyncClient) -> None:
    response = await api.post("/oauth/revoke", data={"token_type_hint": "access_token"})
    assert oauth_error(response) == (400, "invalid_request")


async def test_metadata_names_the_oauth_endpoints(api: httpx.AsyncClient) -> None:
    """RFC 8414 metadata points at the token and revocation endpoints."""
    metadata = (await api.get("/.well-known/oauth-authorization-server")).json()
    assert metadata["token_endpoint"].endswith("/oauth/token")
    assert metadata["revocation_endpoint"].endswith("/oauth/revoke")
    assert set(metadata["grant_types_supported"]) == {"password", "refresh_token"}


async def test_openapi_password_flow_points_at_the_token_endpoint(api: httpx.AsyncClient) -> None:
    """The docs' Authorize button uses the password flow against /oauth/token."""
    schema = (await api.get("/openapi.json")).json()
    flow = schema["components"]["securitySchemes"]["oauth2"]["flows"]["password"]
    assert flow["tokenUrl"] == "/oauth/token"
    assert "/oauth/token" in schema["paths"]
