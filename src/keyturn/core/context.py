"""What a use case knows of the request that asked for it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RequestContext:
    ip: str | None = None
    user_agent: str | None = None
    client_id: str | None = None


NO_CONTEXT = RequestContext()
