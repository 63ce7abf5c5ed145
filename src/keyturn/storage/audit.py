"""The audit_events table: who did what, when, from where; never a token or a password."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection, RowMapping

from keyturn.core.audit import AuditEvent
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


def has_event_since(connection: Connection, event: str, *, since: datetime) -> bool:
    """Whether `event` was recorded after `since` (a range on the occurred_at index)."""
    found = connection.execute(
        select(audit_events.c.id)
        .where(audit_events.c.occurred_at > since, audit_events.c.event == event)
        .limit(1)
    ).first()
    return found is not None


def list_events(
    connection: Connection,
    *,
    limit: int,
    offset: int,
    user_id: str | None = None,
    event: str | None = None,
) -> tuple[list[AuditEvent], int]:
    """A page of events, newest first, and how many match the filters."""
    conditions = []
    if user_id is not None:
        conditions.append(audit_events.c.user_id == user_id)
    if event is not None:
        conditions.append(audit_events.c.event == event)
    total = connection.execute(
        select(func.count()).select_from(audit_events).where(*conditions)
    ).scalar_one()
    rows = connection.execute(
        select(audit_events)
        .where(*conditions)
        .order_by(audit_events.c.id.desc())
        .limit(limit)
        .offset(offset)
    ).mappings()
    return [_event(row) for row in rows], int(total)


def _event(row: RowMapping) -> AuditEvent:
    detail = json.loads(row["detail"]) if row["detail"] else None
    return AuditEvent(
        id=int(row["id"]),
        occurred_at=row["occurred_at"],
        event=row["event"],
        user_id=row["user_id"],
        session_id=row["session_id"],
        ip=row["ip"],
        user_agent=row["user_agent"],
        detail=detail if isinstance(detail, dict) else None,
    )


def login_addresses(
    connection: Connection, user_id: str, *, since: datetime, limit: int = 100
) -> list[str]:
    """Addresses the user logged in from successfully since `since`, newest first."""
    rows = connection.execute(
        select(audit_events.c.ip)
        .where(
            audit_events.c.user_id == user_id,
            audit_events.c.event == "login_succeeded",
            audit_events.c.occurred_at >= since,
            audit_events.c.ip.is_not(None),
        )
        .order_by(audit_events.c.occurred_at.desc())
        .limit(limit)
    )
    return [row[0] for row in rows]
