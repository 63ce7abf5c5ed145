"""/metrics: Prometheus text exposition, behind a bearer token when one is configured."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response

from keyturn import errors
from keyturn.http.deps import ServicesDep
from keyturn.observability.metrics import render_metrics

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response)
def metrics(request: Request, services: ServicesDep) -> Response:
    """Counters (logins, refreshes, reuse detections, revocations) and request latency per
    route, in Prometheus text format. With `KEYTURN_METRICS_TOKEN` set, the scraper must send
    it as `Authorization: Bearer <token>`; raises MissingTokenError or InvalidTokenError."""
    expected = services.settings.metrics_token
    if expected is not None:
        check_metrics_token(request.headers.get("authorization"), expected.get_secret_value())
    body, content_type = render_metrics()
    return Response(body, media_type=content_type)


def check_metrics_token(authorization: str | None, expected: str) -> None:
    """Fail closed: anything but `Bearer <the token>` is refused. The comparison takes the
    same time wherever the first wrong byte is, so timing does not spell out the token."""
    if not authorization:
        raise errors.MissingTokenError("This route needs the metrics token as a bearer token.")
    scheme, _, presented = authorization.partition(" ")
    presented = presented.strip()
    if (
        scheme.lower() != "bearer"
        or not presented
        or not hmac.compare_digest(presented.encode(), expected.encode())
    ):
        raise errors.InvalidTokenError("The metrics token is not valid.")
