"""`keyturn db upgrade`: apply pending migrations."""

from __future__ import annotations

import argparse
from typing import Any

from keyturn.config import Settings
from keyturn.storage.db import Database
from keyturn.storage.migrations import current_revision, upgrade_database


def register(commands: Any) -> None:
    parser = commands.add_parser("db", help="database schema")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    upgrade = actions.add_parser("upgrade", help="apply pending migrations")
    upgrade.set_defaults(handler=run_upgrade)


def run_upgrade(_args: argparse.Namespace) -> int:
    database = Database(Settings().database_url)
    try:
        upgrade_database(database)
        print(f"database at revision {current_revision(database)}")
    finally:
        database.dispose()
    return 0
