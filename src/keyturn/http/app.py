"""The ASGI application: routes, error handlers, the request envelope, start-up and shut-down."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi

from keyturn import __version__
from keyturn.clock import Clock
from keyturn.config import Settings
from keyturn.http.client_ip import parse_networks
from keyturn.http.hot_routes import HotRoutes, hot_routes_of
from keyturn.http.middleware import RequestEnvelope
from keyturn.http.problems import install_problem_handlers
from keyturn.http.routes import (
    admin,
    audit,
    auth,
    discovery,
    email,
    federation,
    health,
    languages,
    metrics,
    mfa,
    oauth,
    passkeys,
)
from keyturn.http.routes.pages import install_web
from keyturn.observability.metrics import RequestObserver
from keyturn.services.container import Services, build_services

DESCRIPTION = """
Keyturn issues short-lived JWT access tokens and rotating refresh tokens.

* Send the access token as `Authorization: Bearer <token>`.
* When a protected route answers 401 `token_expired`, call `POST /api/auth/refresh` once and retry.
* Every error body is `{"error": <code>, "message": <sentence>}`.
"""

# Called on every protected request, by every client every few minutes, by every probe.
HOT_ENDPOINTS = (health.healthz, auth.me, auth.refresh)


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    services: Services | None = None,
    freeze_heap: bool = False,
) -> FastAPI:
    """Build the application; services start with the app's lifespan. `freeze_heap` is for
    a serving process: see `freeze_startup_heap`."""
    problems = settings.configuration_problems()
    if problems:
        raise ValueError(" ".join(problems))
    services = services or build_services(settings, clock=clock)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await services.start()
        if freeze_heap:
            freeze_startup_heap()
        try:
            yield
        finally:
            await services.stop()

    app = FastAPI(
        title="Keyturn",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # /docs is one of our pages (keyturn.web), with its assets served from the package.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.services = services
    app.state.trusted_networks = parse_networks(settings.trusted_proxies)
    install_problem_handlers(app)
    # Health first: probes are the cheapest routes and should not walk past the others.
    for router in (
        health.router,
        auth.router,
        email.router,
        passkeys.router,
        mfa.router,
        federation.router,
        admin.router,
        discovery.router,
    ):
        add_routes(app, router)
    install_web(app)
    add_routes(app, languages.router)  # the pages' language switch
    for router in (oauth.router, audit.router, metrics.router):
        add_routes(app, router)
    # Innermost of ours: the hot routes get the request id, body bound and metrics too.
    app.add_middleware(
        HotRoutes,
        routes=hot_routes_of(app.routes, HOT_ENDPOINTS),
        exception_handlers=app.exception_handlers,
    )
    # Inside RequestEnvelope, so it sees the request id.
    app.add_middleware(RequestObserver)
    app.add_middleware(
        RequestEnvelope,
        max_body_bytes=settings.max_body_bytes,
        access_log=settings.access_log,
        trusted_networks=app.state.trusted_networks,
    )
    _document_security(app)
    return app


def freeze_startup_heap() -> None:
    """Move everything alive after start-up out of the collector's sight.

    The framework, the models and the services are some 130,000 tracked objects that live as
    long as the process. Each full collection walked all of them: 60-70 ms with the event
    loop stopped, a few times a minute under load, and there went the p99 of every request in
    flight. Frozen, a full collection looks at what requests left behind, about 1 ms.
    """
    gc.collect()
    gc.freeze()


def add_routes(app: FastAPI, router: APIRouter) -> None:
    """Put the router's routes on the app itself.

    Our routers carry their prefix and tags already, and are included with nothing more.
    `include_router` would keep each as a nested router, which FastAPI matches twice per
    request (once to choose the router, once to choose the route in it): on the token check
    and refresh paths that cost more than the check itself.
    """
    app.router.routes.extend(router.routes)


def _document_security(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            "oauth2": {
                "type": "oauth2",
                "flows": {"password": {"tokenUrl": "/oauth/token", "scopes": {}}},
            },
        }
        _document_body_limit(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document_body_limit(schema: dict[str, Any]) -> None:
    """Every operation that takes a body may answer 413 `payload_too_large`: the middleware
    refuses a body over KEYTURN_MAX_BODY_BYTES before any route reads it."""
    problem = {"$ref": "#/components/schemas/Problem"}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict) and "requestBody" in operation:
                operation.setdefault("responses", {}).setdefault(
                    "413",
                    {
                        "description": "`payload_too_large`: the body is over the size limit",
                        "content": {"application/json": {"schema": problem}},
                    },
                )


def app_from_environment() -> FastAPI:
    """The factory `keyturn serve` hands to its HTTP server: Settings from the environment."""
    return create_app(Settings(), freeze_heap=True)
