"""The audit trail: security events written in the same transaction as the change they record."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from keyturn.clock import Clock
from keyturn.core.context import RequestContext
from keyturn.observability import metrics
from keyturn.storage import audit as audit_store


class AuditTrail:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def record(
        self,
        connection: Connection,
        event: str,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        context: RequestContext,
        detail: dict[str, Any] | None = None,
    ) -> None:
        audit_store.insert_event(
            connection,
            event=event,
            now=self._clock.now(),
            user_id=user_id,
            session_id=session_id,
            ip=context.ip,
            user_agent=context.user_agent,
            detail=detail,
        )
        metrics.count_event(event)
