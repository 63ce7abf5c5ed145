"""/api/admin: users, their state and roles. Every route needs the admin role."""

from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from keyturn.http.deps import (
    ADMIN_ERRORS,
    BEARER_SECURITY,
    AdminClaims,
    ContextDep,
    PageLimit,
    PageOffset,
    ServicesDep,
)
from keyturn.http.schemas import (
    AdminPasswordRequest,
    AdminUserOut,
    Problem,
    RolesRequest,
    UserPage,
)

router = APIRouter(prefix="/api/admin", tags=["admin"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    **ADMIN_ERRORS,
    404: {"model": Problem, "description": "user_not_found"},
}
# Routes with a JSON body: one that is not JSON at all is refused before any field is read.
_MALFORMED: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "Malformed request: the body is not JSON"},
}
# Changes that could leave Keyturn without an enabled admin.
_CHANGE_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    409: {"model": Problem, "description": "last_admin: the only enabled admin"},
}


@router.get("/users", response_model=UserPage, responses=_ERRORS, openapi_extra=BEARER_SECURITY)
async def list_users(
    _admin: AdminClaims,
    services: ServicesDep,
    limit: PageLimit = 50,
    offset: PageOffset = 0,
    email: Annotated[str | None, Query(max_length=320, description="part of the email")] = None,
) -> UserPage:
    """Users, oldest first, `limit` per page; `email` filters by a part of the address."""
    found, total = await run_in_threadpool(
        services.admin.list_users, limit=limit, offset=offset, email_contains=email or None
    )
    return UserPage(
        users=[AdminUserOut.of(user) for user in found], total=total, limit=limit, offset=offset
    )


@router.get(
    "/users/{user_id}",
    response_model=AdminUserOut,
    responses=_ERRORS,
    openapi_extra=BEARER_SECURITY,
)
async def get_user(user_id: str, _admin: AdminClaims, services: ServicesDep) -> AdminUserOut:
    """One user by id."""
    user = await run_in_threadpool(services.admin.find_user, user_id[:64])
    return AdminUserOut.of(user)


@router.post(
    "/users/{user_id}/disable",
    status_code=204,
    responses=_CHANGE_ERRORS,
    openapi_extra=BEARER_SECURITY,
)
async def disable_user(
    user_id: str, _admin: AdminClaims, services: ServicesDep, context: ContextDep
) -> Response:
    """Disable a user: their sessions and access tokens stop working at once."""
    await run_in_threadpool(services.admin.set_disabled, user_id[:64], True, context=context)
    return Response(status_code=204)


@router.post(
    "/users/{user_id}/enable", status_code=204, responses=_ERRORS, openapi_extra=BEARER_SECURITY
)
async def enable_user(
    user_id: str, _admin: AdminClaims, services: ServicesDep, context: ContextDep
) -> Response:
    """Let a disabled user log in again."""
    await run_in_threadpool(services.admin.set_disabled, user_id[:64], False, context=context)
    return Response(status_code=204)


@router.post(
    "/users/{user_id}/unlock", status_code=204, responses=_ERRORS, openapi_extra=BEARER_SECURITY
)
async def unlock_user(
    user_id: str, _admin: AdminClaims, services: ServicesDep, context: ContextDep
) -> Response:
    """Clear a user's failed-login lock: the right password works again at once (audited as
    `user_unlocked`; the limit per client address is left as it is)."""
    await run_in_threadpool(services.admin.unlock_user, user_id[:64], context=context)
    return Response(status_code=204)


@router.delete(
    "/users/{user_id}/mfa", status_code=204, responses=_ERRORS, openapi_extra=BEARER_SECURITY
)
async def remove_user_mfa(
    user_id: str, admin: AdminClaims, services: ServicesDep, context: ContextDep
) -> Response:
    """Remove every second factor of a user who lost them (authenticator app, recovery
    codes, passkeys); the user's sessions end. Audited as `mfa_removed`."""
    await run_in_threadpool(
        services.factors.remove_factors, user_id[:64], admin_id=admin.subject, context=context
    )
    return Response(status_code=204)


@router.delete(
    "/users/{user_id}", status_code=204, responses=_CHANGE_ERRORS, openapi_extra=BEARER_SECURITY
)
async def delete_user(
    user_id: str, _admin: AdminClaims, services: ServicesDep, context: ContextDep
) -> Response:
    """Delete a user: their sessions and access tokens stop working at once."""
    await run_in_threadpool(services.admin.delete_user, user_id[:64], context=context)
    return Response(status_code=204)


@router.post(
    "/users/{user_id}/password",
    status_code=204,
    responses={
        **_ERRORS,
        **_MALFORMED,
        422: {"model": Problem, "description": "weak_password, with `reasons`"},
        503: {"model": Problem, "description": "overloaded: too many passwords to hash"},
    },
    openapi_extra=BEARER_SECURITY,
)
async def set_password(
    user_id: str,
    body: AdminPasswordRequest,
    request: Request,
    admin: AdminClaims,
    services: ServicesDep,
    context: ContextDep,
) -> Response:
    """Set a user's password. Every session of the user ends at once (the admin's own too,
    when it is their own account); the change is in the audit trail as `password_set`.
    422 `weak_password` (with `reasons`) under the same policy as registration; 503
    `overloaded` with `Retry-After` while too many passwords wait to be hashed."""
    await services.hashing.run(
        functools.partial(
            services.admin.set_password,
            user_id[:64],
            body.new_password,
            actor_id=admin.subject,
            context=context,
        ),
        gone=request.is_disconnected,
    )
    return Response(status_code=204)


@router.put(
    "/users/{user_id}/roles",
    response_model=AdminUserOut,
    responses={**_CHANGE_ERRORS, **_MALFORMED},
    openapi_extra=BEARER_SECURITY,
)
async def set_roles(
    user_id: str,
    body: RolesRequest,
    _admin: AdminClaims,
    services: ServicesDep,
    context: ContextDep,
) -> AdminUserOut:
    """Replace a user's roles (`user` is always kept); their sessions end."""
    user = await run_in_threadpool(
        services.admin.set_roles, user_id[:64], tuple(body.roles), context=context
    )
    return AdminUserOut.of(user)
