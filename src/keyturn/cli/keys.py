"""`keyturn keys rotate|import|revoke|list`: signing keys."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keyturn.services.container import Services
    from keyturn.services.keyring import KeyState

MAX_KEY_FILE_BYTES = 64 * 1024


def register(commands: Any) -> None:
    parser = commands.add_parser("keys", help="signing keys")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    rotate = actions.add_parser(
        "rotate",
        help="add a new signing key and make it current; old public keys stay published"
        " until their tokens have expired",
    )
    rotate.set_defaults(handler=run_rotate)
    importing = actions.add_parser(
        "import",
        help="like rotate, with your own private key (PKCS#8 PEM of KEYTURN_JWT_ALGORITHM);"
        " prints its kid last",
    )
    importing.add_argument("--private-key-file", required=True, type=Path, metavar="FILE")
    importing.set_defaults(handler=run_import)
    revoke = actions.add_parser(
        "revoke", help="stop a key signing and verifying at once, on every instance"
    )
    revoke.add_argument("kid")
    revoke.set_defaults(handler=run_revoke)
    listing = actions.add_parser(
        "list",
        help="list the keys: kid, algorithm and state (signing, next, published until,"
        " retired, revoked)",
    )
    listing.set_defaults(handler=run_list)


@contextlib.contextmanager
def _services() -> Iterator[Services]:
    # Imported here: `keyturn --help` and usage mistakes need none of the server.
    from keyturn.config import Settings
    from keyturn.services.container import build_services
    from keyturn.services.sealing import seal_stored_secrets
    from keyturn.storage.migrations import upgrade_database

    services = build_services(Settings())
    try:
        upgrade_database(services.database)
        seal_stored_secrets(services.database, services.sealer)
        services.keyring.ensure_signing_key()
        yield services
    finally:
        services.database.dispose()
        if services.redis is not None:
            services.redis.close()


def run_rotate(_args: argparse.Namespace) -> int:
    with _services() as services:
        kid = services.keyring.rotate()
    print(f"new signing key {kid}; it signs within seconds, older keys stay published")
    return 0


def run_import(args: argparse.Namespace) -> int:
    path: Path = args.private_key_file
    try:
        with path.open("rb") as file:
            pem = file.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or error}") from None
    if len(pem) > MAX_KEY_FILE_BYTES:
        raise ValueError(f"{path} is too large for a private key")
    with _services() as services:
        kid = services.keyring.import_key(pem)
    print(f"imported signing key; it signs within seconds, older keys stay published: {kid}")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    with _services() as services:
        replacement = services.keyring.revoke(args.kid, revocation=services.revocation)
    print(f"revoked {args.kid}; no instance accepts its tokens any more")
    if replacement is not None:
        print(f"new signing key {replacement} signs from now on")
    return 0


def run_list(_args: argparse.Namespace) -> int:
    with _services() as services:
        states = services.keyring.key_states()
    for state in states:
        print(f"{state.kid}  {state.algorithm}  {describe(state)}")
    return 0


def describe(state: KeyState) -> str:
    when = state.until.strftime("%Y-%m-%d %H:%M:%S UTC") if state.until else ""
    if state.state == "published":
        return f"published until {when}"
    if state.state == "next":
        return f"next (signs from {when})"
    if state.state == "revoked":
        return f"revoked at {when}"
    return state.state
