"""/api/admin/audit: the audit trail, for admins."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from keyturn.http.deps import (
    ADMIN_ERRORS,
    BEARER_SECURITY,
    AdminClaims,
    PageLimit,
    PageOffset,
    ServicesDep,
)
from keyturn.http.schemas import AuditEventOut, AuditPage, Problem

router = APIRouter(prefix="/api/admin", tags=["admin"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    **ADMIN_ERRORS,
    422: {"model": Problem, "description": "Invalid query parameters"},
}


@router.get("/audit", response_model=AuditPage, responses=_ERRORS, openapi_extra=BEARER_SECURITY)
async def list_audit_events(
    _admin: AdminClaims,
    services: ServicesDep,
    limit: PageLimit = 50,
    offset: PageOffset = 0,
    user_id: Annotated[
        str | None,
        Query(max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="events of this user"),
    ] = None,
    event: Annotated[
        str | None,
        Query(max_length=48, pattern=r"^[a-z_]+$", description="one event, e.g. login_failed"),
    ] = None,
) -> AuditPage:
    """Security events, newest first, `limit` per page: logins (succeeded, failed, locked),
    refresh-token reuse, logouts, password changes, disabling, role changes and more.
    Never a token or a password."""
    found, total = await run_in_threadpool(
        services.admin.list_audit_events,
        limit=limit,
        offset=offset,
        user_id=user_id or None,
        event=event or None,
    )
    return AuditPage(
        events=[AuditEventOut.of(item) for item in found], total=total, limit=limit, offset=offset
    )
