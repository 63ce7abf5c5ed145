"""The audit trail: security events written in the same transaction as the change they record."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.engine import Connection

from keyturn.clock import Clock
from keyturn.core.context import RequestContext
from keyturn.observability import metrics
from keyturn.storage import audit as audit_store

logger = logging.getLogger("keyturn.security")
# Events an operator should hear about as they happen, not only when reading the trail:
# someone guessing passwords, a refresh token replayed after rotation (likely stolen), and a
# passkey whose counter went back (its key may have been copied).
_WARNINGS = {
    "login_locked": "logins refused: too many failed attempts",
    "refresh_token_reused": "a rotated refresh token was presented again; its session is ended",
    "passkey_counter_regressed": "a passkey's signature counter went back: its key may be cloned",
}


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
        warning = _WARNINGS.get(event)
        if warning is not None:
            logger.warning(
                warning,
                extra={
                    "event": event,
                    "user_id": user_id,
                    "session_id": session_id,
                    "client": context.ip,
                },
            )
