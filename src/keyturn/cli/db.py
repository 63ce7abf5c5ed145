"""`keyturn db upgrade`: apply pending migrations (and remember KEYTURN_ISSUER, when set);
`keyturn db set-issuer URL`: move the database to another issuer on purpose."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any) -> None:
    parser = commands.add_parser("db", help="database schema")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    upgrade = actions.add_parser("upgrade", help="apply pending migrations")
    upgrade.set_defaults(handler=run_upgrade)
    issuer = actions.add_parser(
        "set-issuer", help="make URL the issuer this database belongs to (see docs/keys.md)"
    )
    issuer.add_argument("url", help="the new KEYTURN_ISSUER, e.g. https://auth.example.com")
    issuer.set_defaults(handler=run_set_issuer)


def run_upgrade(_args: argparse.Namespace) -> int:
    # Imported here (and below): `keyturn --help` and usage mistakes need none of the server.
    from keyturn.clock import SystemClock
    from keyturn.config import Settings
    from keyturn.services.identity import pin_issuer
    from keyturn.services.sealing import load_sealer
    from keyturn.storage.db import Database
    from keyturn.storage.migrations import current_revision, upgrade_database

    settings = Settings()
    database = Database(settings.database_url)
    try:
        upgrade_database(database)
        print(f"database at revision {current_revision(database)}")
        if settings.issuer is not None:  # else the first `keyturn serve` remembers its own
            pin_issuer(database, settings.issuer, sealer=load_sealer(settings), clock=SystemClock())
    finally:
        database.dispose()
    return 0


def run_set_issuer(args: argparse.Namespace) -> int:
    url = args.url.strip()
    if not url.startswith(("https://", "http://")) or url != args.url:
        raise ValueError(f"the issuer must be an http:// or https:// URL, not {args.url!r}")
    from keyturn.clock import SystemClock
    from keyturn.config import Settings
    from keyturn.services.identity import set_issuer
    from keyturn.services.sealing import load_sealer
    from keyturn.storage.db import Database
    from keyturn.storage.migrations import upgrade_database

    settings = Settings()
    database = Database(settings.database_url)
    try:
        upgrade_database(database)
        previous = set_issuer(database, url, sealer=load_sealer(settings), clock=SystemClock())
    finally:
        database.dispose()
    if previous is not None and previous != url:
        print(f"issuer is now {url} (was {previous}); tokens issued as {previous} stop working")
    else:
        print(f"issuer is now {url}")
    return 0
