"""The hot routes (health, token check, refresh) answer outside FastAPI's request handling,
and must read exactly as every other route: errors, request ids, metrics, documentation."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, Request, Response

from keyturn.http.app import HOT_ENDPOINTS
from keyturn.http.hot_routes import hot_routes_of
from tests.support.api import bearer, error_of, login
from tests.support.metrics import metric, scrape


async def test_each_hot_route_is_counted_under_its_template(api: httpx.AsyncClient) -> None:
    tokens = await login(api)
    before = await scrape(api)
    assert (await api.get("/healthz")).status_code == 200
    assert (await api.get("/api/auth/me", headers=bearer(tokens.access_token))).status_code == 200
    refused = await api.post("/api/auth/refresh", json={"refresh_token": "x" * 43})
    assert error_of(refused) == (401, "invalid_refresh_token")
    after = await scrape(api)

    def counted(method: str, route: str, status: str) -> float:
        name = "keyturn_http_request_duration_seconds_count"
        labels = {"method": method, "route": route, "status": status}
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert counted("GET", "/healthz", "200") == 1
    assert counted("GET", "/api/auth/me", "200") == 1
    assert counted("POST", "/api/auth/refresh", "401") == 1


async def test_refusals_read_as_everywhere_else(api: httpx.AsyncClient) -> None:
    missing = await api.get("/api/auth/me")
    assert error_of(missing) == (401, "missing_token")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.headers["x-request-id"]
    not_json = await api.post(
        "/api/auth/refresh", content=b"{", headers={"content-type": "application/json"}
    )
    assert error_of(not_json) == (400, "invalid_request")
    fields = await api.post("/api/auth/refresh", json={"refresh_token": 7})
    assert error_of(fields) == (422, "invalid_request")


async def test_an_unexpected_error_is_a_500_with_the_request_id(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = await login(api)
    services = api.app.state.services  # type: ignore[attr-defined]

    def broken(_token: str) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(services.access, "authenticate", broken)
    # The framework answers 500, then re-raises for the server's log: keep the answer.
    transport = httpx.ASGITransport(app=api.app, raise_app_exceptions=False)  # type: ignore[attr-defined]
    async with httpx.AsyncClient(transport=transport, base_url=str(api.base_url)) as client:
        failed = await client.get("/api/auth/me", headers=bearer(tokens.access_token))
    assert error_of(failed) == (500, "internal_error")
    assert failed.json()["request_id"]
    assert failed.headers.get_list("x-request-id") == [failed.json()["request_id"]]


async def test_other_methods_and_paths_fall_through_to_the_framework(
    api: httpx.AsyncClient,
) -> None:
    assert error_of(await api.post("/healthz")) == (405, "method_not_allowed")
    assert error_of(await api.delete("/api/auth/me")) == (405, "method_not_allowed")
    slash = await api.get("/api/auth/me/")
    assert (slash.status_code, slash.headers["location"]) == (307, f"{api.base_url}/api/auth/me")


async def test_hot_routes_stay_documented(api: httpx.AsyncClient) -> None:
    paths = (await api.get("/openapi.json")).json()["paths"]
    assert "200" in paths["/api/auth/me"]["get"]["responses"]
    refresh = paths["/api/auth/refresh"]["post"]
    assert "refresh_token" in str(refresh["requestBody"])
    assert "/healthz" in paths
    assert {endpoint.__name__ for endpoint in HOT_ENDPOINTS} == {"healthz", "me", "refresh"}


def test_a_hot_endpoint_must_take_the_request_alone() -> None:
    router = APIRouter()

    @router.get("/wants-more")
    async def wants_more(request: Request, page: int = 1) -> Response:
        return Response()

    async def undeclared(request: Request) -> Response:
        return Response()

    with pytest.raises(ValueError, match="must take the request alone"):
        hot_routes_of(router.routes, [wants_more])
    with pytest.raises(ValueError, match="without a route: undeclared"):
        hot_routes_of(router.routes, [undeclared])
