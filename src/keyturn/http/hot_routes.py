"""The routes clients call most, called without the framework's per-request machinery.

Every protected request runs the token check, every client refreshes every few minutes and
every orchestrator probes health. Through FastAPI each of these pays for its exception and
body-limit layers, route matching, dependency resolution and the endpoint wrapper: about
60 µs per request on a small machine, sixty times the token check itself (a cached
verification and a revocation lookup). This layer sits inside Keyturn's own middleware (so
the request id, the body bound and the metrics stay the same) and calls these endpoints
directly, by exact method and path.

The routes stay declared on the FastAPI app: the declaration is what this layer dispatches
from, and what gives them their OpenAPI documentation. Their endpoints take the request
alone and return a Response, which `hot_routes_of` checks when the app is built.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]
ExceptionHandler = Callable[[Request, Exception], Any]


class HotRoutes:
    """Pure ASGI: answers the given routes itself and hands every other request on."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Iterable[APIRoute],
        exception_handlers: Mapping[Any, ExceptionHandler],
    ) -> None:
        self.app = app
        self._routes = {
            (method, route.path): route for route in routes for method in route.methods or ()
        }
        # Unexpected errors are left to the framework's outermost layer, which logs them and
        # answers 500 with the request id, as for any other route.
        self._handlers = {
            kind: handler
            for kind, handler in exception_handlers.items()
            if isinstance(kind, type) and kind is not Exception
        }
        for handler in self._handlers.values():
            if not inspect.iscoroutinefunction(handler):
                raise ValueError(f"exception handler {handler.__name__} must be async")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            route = self._routes.get((scope["method"], scope["path"]))
            if route is not None:
                scope["route"] = route  # what the metrics label the request with
                request = Request(scope, receive, send)
                endpoint: Endpoint = route.endpoint
                response: Response
                try:
                    response = await endpoint(request)
                except Exception as exc:
                    handler = self._handler_for(exc)
                    if handler is None:
                        raise
                    response = await handler(request, exc)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _handler_for(self, exc: Exception) -> ExceptionHandler | None:
        for kind in type(exc).__mro__:
            handler = self._handlers.get(kind)
            if handler is not None:
                return handler
        return None


def hot_routes_of(routes: Iterable[Any], endpoints: Iterable[Endpoint]) -> list[APIRoute]:
    """The declared routes of these endpoints; ValueError for an endpoint that is not
    declared, or that takes more than the request (it would need FastAPI to call it)."""
    wanted = set(endpoints)
    found = [r for r in routes if isinstance(r, APIRoute) and r.endpoint in wanted]
    missing = wanted - {route.endpoint for route in found}
    if missing:
        names = ", ".join(sorted(endpoint.__name__ for endpoint in missing))
        raise ValueError(f"hot endpoints without a route: {names}")
    for route in found:
        parameters = list(inspect.signature(route.endpoint).parameters.values())
        if len(parameters) != 1 or route.dependencies:
            raise ValueError(f"hot endpoint {route.endpoint.__name__} must take the request alone")
    return found
