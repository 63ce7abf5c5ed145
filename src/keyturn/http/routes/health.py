"""/healthz (the process answers) and /readyz (its dependencies answer)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from keyturn import wire
from keyturn.errors import ServiceUnavailableError
from keyturn.http.deps import ServicesDep

router = APIRouter(tags=["health"])


_HEALTHY = b'{"status":"ok"}'


@router.get("/healthz", response_model=dict[str, str])
async def healthz(request: Request) -> Response:
    """The process is up."""
    # A hot route (see http/hot_routes.py): orchestrators probe it, and it is the
    # benchmark's ceiling, so it goes the same way as the token check.
    return Response(_HEALTHY, media_type="application/json")


@router.get("/readyz")
async def readyz(services: ServicesDep) -> JSONResponse:
    """Every dependency answers: the database (and Redis when configured); 503 naming the
    one that does not."""
    checks: dict[str, str] = {}
    for name, probe in services.readiness_probes().items():
        try:
            await run_in_threadpool(probe)
            checks[name] = "ok"
        except ServiceUnavailableError:
            checks[name] = "unavailable"
    if all(state == "ok" for state in checks.values()):
        return JSONResponse({"status": "ok", "checks": checks})
    down = ", ".join(name for name, state in checks.items() if state != "ok")
    return JSONResponse(
        {
            "error": wire.SERVICE_UNAVAILABLE,
            "message": f"Not ready: {down} unavailable.",
            "checks": checks,
        },
        status_code=503,
    )
