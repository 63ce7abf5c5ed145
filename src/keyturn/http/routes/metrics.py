"""/metrics: Prometheus text exposition."""

from __future__ import annotations

from fastapi import APIRouter, Response

from keyturn.observability.metrics import render_metrics

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response)
def metrics() -> Response:
    """Counters (logins, refreshes, reuse detections, revocations) and request latency per
    route, in Prometheus text format."""
    body, content_type = render_metrics()
    return Response(body, media_type=content_type)
