"""The audit_events table: who did what, when, from where; never a token or a password."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Connection

from keyturn.storage.models import audit_events


def insert_event(
    connection: Connection,
    *,
    event: str,
    now: datetime,
    user_id: str | None = None,
    session_id: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    connection.execute(
        insert(audit_events).values(
            occurred_at=now,
            event=event,
            user_id=user_id,
            session_id=session_id,
            ip=ip,
            user_agent=user_agent[:512] if user_agent else None,
            detail=json.dumps(detail, sort_keys=True) if detail else None,
        )
    )
