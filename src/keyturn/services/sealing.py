"""The key that seals secrets at rest: from configuration, or (development only) a generated file.

`load_sealer(settings)` is called once at start by whoever stores or reads secrets;
`seal_stored_secrets()` seals rows written in plain text by earlier versions, and re-seals
rows sealed with an older key, so no secret is lost when the key changes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

from keyturn.config import Settings
from keyturn.core.sealing import Sealer, SealingError, new_sealing_key
from keyturn.storage import keys as key_store
from keyturn.storage import secrets as secret_store
from keyturn.storage.db import Database

logger = logging.getLogger("keyturn.sealing")

DEVELOPMENT_KEY_PATH = Path(".keyturn") / "secrets.key"


def load_sealer(settings: Settings, *, development_key_path: Path | None = None) -> Sealer:
    """The Sealer of the configured keys.

    Raises SealingError when a key is malformed, the key file cannot be read, or, in
    production, no key is configured.
    """
    keys: list[str] = []
    if settings.secrets_key is not None:
        keys.append(settings.secrets_key.get_secret_value())
    if settings.secrets_key_file is not None:
        keys.extend(_read_key_file(settings.secrets_key_file))
    if settings.secrets_old_keys is not None:
        old = settings.secrets_old_keys.get_secret_value().split(",")
        keys.extend(key.strip() for key in old if key.strip())
    if not keys:
        if settings.env == "production":
            raise SealingError("KEYTURN_SECRETS_KEY (or KEYTURN_SECRETS_KEY_FILE) is not set")
        path = development_key_path or DEVELOPMENT_KEY_PATH
        keys.append(development_key(path))
    return Sealer(keys)


def _read_key_file(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not readable"
        raise SealingError(f"cannot read KEYTURN_SECRETS_KEY_FILE {path}: {reason}") from exc
    keys = [line.strip() for line in text.splitlines() if line.strip()]
    if not keys:
        raise SealingError(f"KEYTURN_SECRETS_KEY_FILE {path} holds no key")
    return keys


def development_key_in_use(settings: Settings) -> Path | None:
    """Where the generated development key is, when no sealing key is configured."""
    configured = settings.secrets_key or settings.secrets_key_file or settings.secrets_old_keys
    if configured is not None or settings.env == "production":
        return None
    return DEVELOPMENT_KEY_PATH.resolve()


def development_key(path: Path) -> str:
    """The development sealing key in `path`, generated (0600, folder 0700) on first use.

    Processes starting together agree on one key: the file appears whole (written aside,
    then linked into place), and whoever loses the race reads the winner's.
    """
    if not path.exists():
        if not path.parent.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w", encoding="ascii") as file:
                file.write(new_sealing_key() + "\n")
            with contextlib.suppress(FileExistsError):
                os.link(draft, path)
        finally:
            draft.unlink(missing_ok=True)
    keys = _read_key_file(path)
    return keys[0]


def seal_stored_secrets(database: Database, sealer: Sealer) -> int:
    """Seal every stored secret still in plain text, or sealed with an older key; returns
    how many rows were rewritten. Raises SealingError for a row no configured key opens."""
    with database.transaction() as connection:
        count = key_store.reseal_keys(connection, sealer)
        count += secret_store.reseal_secrets(connection, sealer)
    if count:
        logger.info("sealed %d stored secrets with the current key", count)
    return count
