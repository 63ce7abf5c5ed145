"""Accounts: registration, password policy, email and username rules."""

from __future__ import annotations

import re
import uuid

from email_validator import EmailNotValidError, validate_email

from keyturn import errors, wire
from keyturn.clock import Clock
from keyturn.core.context import NO_CONTEXT, RequestContext
from keyturn.core.passwords import PasswordHashing, password_problems
from keyturn.core.sessions import UserRecord
from keyturn.ratelimit.limits import ClientLimits
from keyturn.services.audit import AuditTrail
from keyturn.storage import users as user_store
from keyturn.storage.db import Database
from keyturn.storage.users import DuplicateUserError

_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{2,31}")
KNOWN_ROLES = frozenset({wire.ROLE_USER, wire.ROLE_ADMIN})


def normalize_email(email: str) -> str:
    """The address as we store it; raises InvalidEmailError with the reason."""
    if len(email) > 254:
        raise errors.InvalidEmailError("The email address is too long.")
    try:
        return validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise errors.InvalidEmailError(
            f"The email address is not valid: {error}", reasons=[str(error)]
        ) from error


def check_username(username: str) -> str:
    if not _USERNAME.fullmatch(username):
        raise errors.InvalidUsernameError(
            "A username has 3 to 32 letters, digits, '.', '_' or '-', starting with a letter"
            " or digit."
        )
    return username


def check_password(password: str, *, email: str, username: str | None) -> None:
    problems = password_problems(password, email=email, username=username)
    if problems:
        raise errors.WeakPasswordError(" ".join(problems), reasons=problems)


def check_roles(roles: tuple[str, ...]) -> tuple[str, ...]:
    unknown = sorted(set(roles) - KNOWN_ROLES)
    if unknown:
        raise errors.ValidationFailedError(f"Unknown role: {', '.join(unknown)}.")
    return tuple(sorted(set(roles) | {wire.ROLE_USER}))


class AccountService:
    def __init__(
        self,
        database: Database,
        hashing: PasswordHashing,
        audit: AuditTrail,
        clock: Clock,
        *,
        client_limits: ClientLimits | None = None,
    ) -> None:
        self._database = database
        self._hashing = hashing
        self._audit = audit
        self._clock = clock
        self._client_limits = client_limits

    def register(
        self,
        *,
        email: str,
        password: str,
        username: str | None = None,
        roles: tuple[str, ...] = (wire.ROLE_USER,),
        context: RequestContext = NO_CONTEXT,
    ) -> UserRecord:
        """Create an account.

        Raises InvalidEmailError, InvalidUsernameError, WeakPasswordError (with `reasons`),
        EmailTakenError or UsernameTakenError; TooManyRequestsError past
        KEYTURN_REGISTER_MAX_PER_IP.
        """
        if self._client_limits is not None:
            self._client_limits.count_registration(context)
        email = normalize_email(email)
        if username is not None:
            username = check_username(username)
        check_password(password, email=email, username=username)
        roles = check_roles(roles)
        with self._database.snapshot() as connection:
            if user_store.find_user_by_email(connection, email) is not None:
                raise errors.EmailTakenError()
            if username and user_store.find_user_by_username(connection, username) is not None:
                raise errors.UsernameTakenError()
        password_hash = self._hashing.hash_password(password)
        try:
            with self._database.transaction() as connection:
                user = user_store.insert_user(
                    connection,
                    user_id=uuid.uuid4().hex,
                    email=email,
                    username=username,
                    password_hash=password_hash,
                    roles=roles,
                    now=self._clock.now(),
                )
                self._audit.record(connection, "user_registered", user_id=user.id, context=context)
        except DuplicateUserError as error:
            if error.field == "username":
                raise errors.UsernameTakenError() from error
            raise errors.EmailTakenError() from error
        return user

    def get_user(self, user_id: str) -> UserRecord | None:
        with self._database.snapshot() as connection:
            return user_store.find_user_by_id(connection, user_id)
