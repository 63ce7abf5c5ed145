"""/healthz (the process answers) and /readyz (its dependencies answer)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from keyturn import wire
from keyturn.errors import ServiceUnavailableError
from keyturn.http.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


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
