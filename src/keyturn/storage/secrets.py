"""The server_secrets table: random keys every instance shares (CSRF binding, for one)."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from keyturn.storage.models import server_secrets


def get_or_create_secret(connection: Connection, name: str, *, now: datetime) -> bytes:
    """The secret called `name`, created at random (32 bytes) by whoever asks first."""
    insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    connection.execute(
        insert(server_secrets)
        .values(name=name, value=secrets.token_hex(32), created_at=now)
        .on_conflict_do_nothing(index_elements=[server_secrets.c.name])
    )
    value = connection.execute(
        select(server_secrets.c.value).where(server_secrets.c.name == name)
    ).scalar_one()
    return bytes.fromhex(value)
