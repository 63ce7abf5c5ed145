"""The server_secrets table: random keys every instance shares (CSRF binding, for one),
stored sealed (see core.sealing)."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import Column, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from keyturn.core.sealing import Sealer
from keyturn.storage.models import server_secrets


def get_or_create_secret(
    connection: Connection, name: str, *, now: datetime, sealer: Sealer
) -> bytes:
    """The secret called `name`, created at random (32 bytes) by whoever asks first."""
    insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    connection.execute(
        insert(server_secrets)
        .values(
            name=name, value=sealer.seal(secrets.token_bytes(32).hex().encode()), created_at=now
        )
        .on_conflict_do_nothing(index_elements=[server_secrets.c.name])
    )
    value = connection.execute(
        select(server_secrets.c.value).where(server_secrets.c.name == name)
    ).scalar_one()
    return bytes.fromhex(sealer.unseal(value).decode("ascii"))


def reseal_secrets(connection: Connection, sealer: Sealer) -> int:
    """Seal plain-text secrets (and renew older seals) with the current key."""
    return reseal_column(
        connection, sealer, key=server_secrets.c.name, value=server_secrets.c.value
    )


def reseal_column(
    connection: Connection, sealer: Sealer, *, key: Column[str], value: Column[str]
) -> int:
    """Seal every plain-text `value` of its table (and renew older seals) with the current
    key, row by row as `key` names them; the number of rows rewritten."""
    rows = connection.execute(select(key, value)).all()
    count = 0
    for name, stored in rows:
        if sealer.needs_resealing(stored):
            connection.execute(
                update(value.table).where(key == name).values({value.name: sealer.reseal(stored)})
            )
            count += 1
    return count


def find_sealed_text(connection: Connection, name: str, *, sealer: Sealer) -> str | None:
    """The text stored (sealed) under `name`, or None."""
    value = connection.execute(
        select(server_secrets.c.value).where(server_secrets.c.name == name)
    ).scalar_one_or_none()
    return None if value is None else sealer.unseal(value).decode("utf-8")


def put_sealed_text(
    connection: Connection,
    name: str,
    text: str,
    *,
    now: datetime,
    sealer: Sealer,
    replace: bool,
) -> None:
    """Store `text` (sealed) under `name`; an existing row is kept unless `replace`."""
    insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    statement = insert(server_secrets).values(
        name=name, value=sealer.seal(text.encode("utf-8")), created_at=now
    )
    if replace:
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=[server_secrets.c.name],
                set_={"value": statement.excluded.value, "created_at": now},
            )
        )
    else:
        connection.execute(statement.on_conflict_do_nothing(index_elements=[server_secrets.c.name]))
