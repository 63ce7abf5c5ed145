"""The passkeys table, and passkey_challenges: single-use WebAuthn challenges as digests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from keyturn.core.passkeys import ChallengePurpose, Passkey
from keyturn.storage.models import passkey_challenges, passkeys


def _passkey_of(row: Any) -> Passkey:
    return Passkey(
        id=row.id,
        user_id=row.user_id,
        credential_id=row.credential_id,
        public_key=bytes(row.public_key),
        sign_count=int(row.sign_count),
        transports=tuple(part for part in row.transports.split(",") if part),
        backup_eligible=bool(row.backup_eligible),
        backed_up=bool(row.backed_up),
        aaguid=row.aaguid,
        name=row.name,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
    )


def insert_passkey(connection: Connection, passkey: Passkey) -> bool:
    """Store a new passkey; False when its credential id is registered already (to anyone)."""
    try:
        with connection.begin_nested():
            connection.execute(
                insert(passkeys).values(
                    id=passkey.id,
                    user_id=passkey.user_id,
                    credential_id=passkey.credential_id,
                    public_key=passkey.public_key,
                    sign_count=passkey.sign_count,
                    transports=",".join(passkey.transports),
                    backup_eligible=passkey.backup_eligible,
                    backed_up=passkey.backed_up,
                    aaguid=passkey.aaguid,
                    name=passkey.name,
                    created_at=passkey.created_at,
                    last_used_at=passkey.last_used_at,
                )
            )
    except IntegrityError:
        return False
    return True


def find_passkey_by_credential_id(connection: Connection, credential_id: str) -> Passkey | None:
    row = connection.execute(
        select(passkeys).where(passkeys.c.credential_id == credential_id)
    ).first()
    return _passkey_of(row) if row is not None else None


def find_passkey(connection: Connection, user_id: str, passkey_id: str) -> Passkey | None:
    """The user's passkey with this id; None for anyone else's."""
    row = connection.execute(
        select(passkeys).where(passkeys.c.id == passkey_id, passkeys.c.user_id == user_id)
    ).first()
    return _passkey_of(row) if row is not None else None


def list_passkeys(connection: Connection, user_id: str) -> list[Passkey]:
    """The user's passkeys, oldest first."""
    rows = connection.execute(
        select(passkeys)
        .where(passkeys.c.user_id == user_id)
        .order_by(passkeys.c.created_at, passkeys.c.id)
    )
    return [_passkey_of(row) for row in rows]


def has_passkeys(connection: Connection, user_id: str) -> bool:
    found = connection.execute(
        select(passkeys.c.id).where(passkeys.c.user_id == user_id).limit(1)
    ).first()
    return found is not None


def count_passkeys(connection: Connection, user_id: str) -> int:
    count = connection.execute(
        select(func.count()).select_from(passkeys).where(passkeys.c.user_id == user_id)
    ).scalar_one()
    return int(count)


def rename_passkey(connection: Connection, user_id: str, passkey_id: str, *, name: str) -> bool:
    result = connection.execute(
        update(passkeys)
        .where(passkeys.c.id == passkey_id, passkeys.c.user_id == user_id)
        .values(name=name)
    )
    return result.rowcount == 1


def delete_passkey(connection: Connection, user_id: str, passkey_id: str) -> bool:
    """Delete the user's passkey; False when it is not theirs (or gone)."""
    result = connection.execute(
        delete(passkeys).where(passkeys.c.id == passkey_id, passkeys.c.user_id == user_id)
    )
    return result.rowcount == 1


def delete_passkeys(connection: Connection, user_id: str) -> int:
    """Delete every passkey of the user (an admin removing their factors)."""
    return int(connection.execute(delete(passkeys).where(passkeys.c.user_id == user_id)).rowcount)


def record_passkey_use(
    connection: Connection,
    passkey_id: str,
    *,
    seen_sign_count: int,
    sign_count: int,
    backed_up: bool,
    now: datetime,
) -> bool:
    """Store the counter of an accepted assertion, if it is still the one the check saw: of
    two assertions racing with one counter value, only one wins."""
    result = connection.execute(
        update(passkeys)
        .where(passkeys.c.id == passkey_id, passkeys.c.sign_count == seen_sign_count)
        .values(sign_count=sign_count, backed_up=backed_up, last_used_at=now)
    )
    return result.rowcount == 1


# Challenges.


def insert_challenge(
    connection: Connection,
    *,
    challenge_hash: str,
    purpose: ChallengePurpose,
    user_id: str | None,
    expires_at: datetime,
) -> None:
    connection.execute(
        insert(passkey_challenges).values(
            challenge_hash=challenge_hash,
            purpose=purpose.value,
            user_id=user_id,
            expires_at=expires_at,
        )
    )


def take_challenge(
    connection: Connection,
    challenge_hash: str,
    *,
    purpose: ChallengePurpose,
    user_id: str | None,
    now: datetime,
) -> bool:
    """Use up the challenge if it was made for this purpose and account (None: a password-less
    login, which names none) and has not expired. One DELETE decides, so of two requests
    presenting the same challenge at once only one finds it."""
    owner = (
        passkey_challenges.c.user_id.is_(None)
        if user_id is None
        else passkey_challenges.c.user_id == user_id
    )
    result = connection.execute(
        delete(passkey_challenges).where(
            and_(
                passkey_challenges.c.challenge_hash == challenge_hash,
                passkey_challenges.c.purpose == purpose.value,
                owner,
                passkey_challenges.c.expires_at > now,
            )
        )
    )
    return result.rowcount == 1


def purge_challenges(connection: Connection, *, before: datetime, limit: int) -> int:
    """Delete up to `limit` challenges that expired before `before`."""
    old = (
        select(passkey_challenges.c.challenge_hash)
        .where(passkey_challenges.c.expires_at < before)
        .limit(limit)
        .scalar_subquery()
    )
    result = connection.execute(
        delete(passkey_challenges).where(passkey_challenges.c.challenge_hash.in_(old))
    )
    return int(result.rowcount)
