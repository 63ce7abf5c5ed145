"""`keyturn keys rotate|list`: signing keys."""

from __future__ import annotations

import argparse
from typing import Any

from keyturn.clock import SystemClock
from keyturn.config import Settings
from keyturn.services.keyring import KeyringService
from keyturn.storage.db import Database
from keyturn.storage.migrations import upgrade_database


def register(commands: Any) -> None:
    parser = commands.add_parser("keys", help="signing keys")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    rotate = actions.add_parser(
        "rotate",
        help="add a new signing key and make it current; old public keys stay published"
        " until their tokens have expired",
    )
    rotate.set_defaults(handler=run_rotate)
    listing = actions.add_parser("list", help="list the keys and their state")
    listing.set_defaults(handler=run_list)


def _keyring() -> tuple[KeyringService, Database]:
    settings = Settings()
    database = Database(settings.database_url)
    upgrade_database(database)
    keyring = KeyringService(settings, database, SystemClock())
    keyring.ensure_signing_key()
    return keyring, database


def run_rotate(_args: argparse.Namespace) -> int:
    keyring, database = _keyring()
    try:
        kid = keyring.rotate()
    finally:
        database.dispose()
    print(f"new signing key {kid}; it signs within seconds, older keys stay published")
    return 0


def run_list(_args: argparse.Namespace) -> int:
    keyring, database = _keyring()
    database.dispose()
    published = {key["kid"] for key in keyring.jwks()["keys"]}
    for kid in sorted(published):
        print(kid)
    return 0
