"""An audit event as the trail keeps it: who did what, when, from where; never a secret."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class AuditEvent:
    id: int
    occurred_at: datetime
    event: str
    user_id: str | None
    session_id: str | None
    ip: str | None
    user_agent: str | None
    detail: dict[str, Any] | None
