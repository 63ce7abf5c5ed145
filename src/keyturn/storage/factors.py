"""The second factors of a user: authenticator apps (totp_factors), recovery codes, and the
users.mfa_enabled flag that follows them.

`factor_methods` and `delete_factors` are the one place that knows every factor table
(authenticator apps, recovery codes, passkeys).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, exists, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from keyturn import wire
from keyturn.storage.models import passkeys, recovery_codes, totp_factors, users


@dataclass(frozen=True, slots=True)
class StoredTotp:
    user_id: str
    sealed_secret: str
    created_at: datetime
    confirmed_at: datetime | None
    last_step: int | None

    @property
    def is_active(self) -> bool:
        return self.confirmed_at is not None


def factor_methods(connection: Connection, user_id: str) -> list[str]:
    """The second-factor methods the user can finish a login with, in the order offered.
    Recovery codes count only beside the authenticator app they stand in for."""
    methods: list[str] = []
    if connection.execute(
        select(
            exists().where(
                totp_factors.c.user_id == user_id, totp_factors.c.confirmed_at.is_not(None)
            )
        )
    ).scalar():
        methods.append(wire.MFA_METHOD_TOTP)
    if (
        methods
        and connection.execute(
            select(
                exists().where(
                    recovery_codes.c.user_id == user_id, recovery_codes.c.used_at.is_(None)
                )
            )
        ).scalar()
    ):
        methods.append(wire.MFA_METHOD_RECOVERY_CODE)
    if connection.execute(select(exists().where(passkeys.c.user_id == user_id))).scalar():
        methods.append(wire.MFA_METHOD_PASSKEY)
    return methods


def sync_mfa_enabled(connection: Connection, user_id: str, *, now: datetime) -> bool:
    """Set users.mfa_enabled from the factor tables; returns the new value. Call it in the
    transaction of every change of a factor."""
    enabled = any(
        method != wire.MFA_METHOD_RECOVERY_CODE for method in factor_methods(connection, user_id)
    )
    connection.execute(
        update(users).where(users.c.id == user_id).values(mfa_enabled=enabled, updated_at=now)
    )
    return enabled


def delete_factors(connection: Connection, user_id: str, *, now: datetime) -> int:
    """Remove every second factor of the user; returns how many rows went."""
    removed = 0
    for table in (totp_factors, recovery_codes, passkeys):
        removed += int(
            connection.execute(delete(table).where(table.c.user_id == user_id)).rowcount or 0
        )
    sync_mfa_enabled(connection, user_id, now=now)
    return removed


# Authenticator apps ---------------------------------------------------------------------------


def find_totp(connection: Connection, user_id: str) -> StoredTotp | None:
    row = connection.execute(select(totp_factors).where(totp_factors.c.user_id == user_id)).first()
    if row is None:
        return None
    return StoredTotp(
        user_id=row.user_id,
        sealed_secret=row.secret,
        created_at=row.created_at,
        confirmed_at=row.confirmed_at,
        last_step=row.last_step,
    )


def replace_pending_totp(
    connection: Connection, user_id: str, *, sealed_secret: str, now: datetime
) -> bool:
    """Store a new, unconfirmed secret in place of any unconfirmed one; False (nothing
    written) when the user's app is already active."""
    connection.execute(
        delete(totp_factors).where(
            totp_factors.c.user_id == user_id, totp_factors.c.confirmed_at.is_(None)
        )
    )
    if find_totp(connection, user_id) is not None:
        return False
    connection.execute(
        insert(totp_factors).values(user_id=user_id, secret=sealed_secret, created_at=now)
    )
    return True


def confirm_totp(connection: Connection, user_id: str, *, step: int, now: datetime) -> bool:
    """Activate the pending secret, remembering the step of the code that confirmed it;
    False when there is none pending (confirmed meanwhile, or replaced)."""
    result = connection.execute(
        update(totp_factors)
        .where(totp_factors.c.user_id == user_id, totp_factors.c.confirmed_at.is_(None))
        .values(confirmed_at=now, last_step=step)
    )
    return result.rowcount == 1


def claim_totp_step(connection: Connection, user_id: str, step: int) -> bool:
    """Record that the code of `step` was used; True for exactly one caller, and only when
    no later or equal step was used before (two requests racing with one code: one wins)."""
    result = connection.execute(
        update(totp_factors)
        .where(
            totp_factors.c.user_id == user_id,
            totp_factors.c.confirmed_at.is_not(None),
            or_(totp_factors.c.last_step.is_(None), totp_factors.c.last_step < step),
        )
        .values(last_step=step)
    )
    return result.rowcount == 1


def delete_totp(connection: Connection, user_id: str) -> bool:
    """Remove the app (active or pending) and the recovery codes that stood in for it."""
    result = connection.execute(delete(totp_factors).where(totp_factors.c.user_id == user_id))
    connection.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
    return bool(result.rowcount)


# Recovery codes -------------------------------------------------------------------------------


def replace_recovery_codes(
    connection: Connection, user_id: str, code_hashes: list[str], *, now: datetime
) -> None:
    connection.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
    connection.execute(
        insert(recovery_codes),
        [{"user_id": user_id, "code_hash": digest, "created_at": now} for digest in code_hashes],
    )


def use_recovery_code(
    connection: Connection, user_id: str, code_hash: str, *, now: datetime
) -> bool:
    """Spend one of the user's unused codes; True for exactly one caller per code."""
    result = connection.execute(
        update(recovery_codes)
        .where(
            recovery_codes.c.user_id == user_id,
            recovery_codes.c.code_hash == code_hash,
            recovery_codes.c.used_at.is_(None),
        )
        .values(used_at=now)
    )
    return result.rowcount == 1


def count_unused_recovery_codes(connection: Connection, user_id: str) -> int:
    return int(
        connection.execute(
            select(func.count())
            .select_from(recovery_codes)
            .where(recovery_codes.c.user_id == user_id, recovery_codes.c.used_at.is_(None))
        ).scalar_one()
    )
