"""How the app is put together where it departs from FastAPI's usual way, for speed."""

from __future__ import annotations

import httpx
from fastapi.routing import APIRoute

from keyturn.http.routes import admin, audit, auth, discovery, health, metrics, oauth


async def test_routes_sit_on_the_app_itself_not_in_nested_routers(api: httpx.AsyncClient) -> None:
    """`add_routes` puts each router's routes on the app: `include_router` would leave them
    nested, matched twice per request, which cost more than the token check itself."""
    app = api.app  # type: ignore[attr-defined]
    on_app = {id(route) for route in app.router.routes}
    for module in (health, auth, admin, discovery, oauth, audit, metrics):
        declared = [route for route in module.router.routes if isinstance(route, APIRoute)]
        assert declared, module.__name__
        nested = [route.path for route in declared if id(route) not in on_app]
        assert nested == [], module.__name__
