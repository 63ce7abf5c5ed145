"""`keyturn users create|list|disable|enable|unlock|remove-mfa|delete|set-role|set-password`."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from keyturn import wire

if TYPE_CHECKING:
    from keyturn.services.container import Services


def register(commands: Any) -> None:
    parser = commands.add_parser("users", help="manage users")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="create a user (password from standard input)")
    create.add_argument("--email", required=True)
    create.add_argument("--username")
    create.add_argument(
        "--password-stdin",
        action="store_true",
        required=True,
        help="read the password from standard input (never from the command line)",
    )
    create.add_argument(
        "--role",
        action="append",
        choices=sorted({wire.ROLE_ADMIN, wire.ROLE_USER}),
        default=[],
        help="add a role (repeatable)",
    )
    create.set_defaults(handler=run_create)

    listing = actions.add_parser("list", help="list users")
    listing.add_argument("--email", help="only addresses containing this")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--offset", type=int, default=0)
    listing.set_defaults(handler=run_list)

    for name, handler, text in (
        ("disable", run_disable, "disable a user and end their sessions"),
        ("enable", run_enable, "enable a disabled user"),
        ("unlock", run_unlock, "clear a user's failed-login lock"),
        ("remove-mfa", run_remove_mfa, "remove a user's second factors and end their sessions"),
        ("delete", run_delete, "delete a user and end their sessions"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("user", help="id, email or username")
        action.set_defaults(handler=handler)

    set_role = actions.add_parser("set-role", help="replace a user's roles")
    set_role.add_argument("user", help="id, email or username")
    set_role.add_argument("roles", nargs="+", choices=sorted({wire.ROLE_ADMIN, wire.ROLE_USER}))
    set_role.set_defaults(handler=run_set_role)

    set_password = actions.add_parser(
        "set-password",
        help="set a user's password (from standard input) and end all their sessions",
    )
    set_password.add_argument("user", help="id, email or username")
    set_password.add_argument(
        "--password-stdin",
        action="store_true",
        required=True,
        help="read the new password from standard input (never from the command line)",
    )
    set_password.set_defaults(handler=run_set_password)


def _services() -> Services:
    # Imported here: `keyturn --help` and usage mistakes need none of the server.
    from keyturn.config import Settings
    from keyturn.services.container import build_services
    from keyturn.storage.migrations import upgrade_database

    services = build_services(Settings())
    upgrade_database(services.database)
    return services


def _read_password() -> str:
    password = sys.stdin.readline()
    password = password.removesuffix("\n").removesuffix("\r")
    if not password:
        raise ValueError("no password on standard input")
    return password


def run_create(args: argparse.Namespace) -> int:
    password = _read_password()
    services = _services()
    try:
        user = services.accounts.register(
            email=args.email,
            password=password,
            username=args.username,
            roles=(wire.ROLE_USER, *args.role),
        )
    finally:
        services.database.dispose()
    print(f"created user {user.id} <{user.email}> roles={','.join(user.roles)}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    services = _services()
    try:
        found, total = services.admin.list_users(
            limit=args.limit, offset=args.offset, email_contains=args.email
        )
    finally:
        services.database.dispose()
    for user in found:
        state = "disabled" if user.is_disabled else "active"
        print(f"{user.id}\t{user.email}\t{user.username or '-'}\t{','.join(user.roles)}\t{state}")
    print(f"{len(found)} of {total} users", file=sys.stderr)
    return 0


def _set_disabled(reference: str, disabled: bool) -> int:
    services = _services()
    try:
        user = services.admin.find_user(reference)
        services.admin.set_disabled(user.id, disabled)
    finally:
        services.database.dispose()
    print(f"{'disabled' if disabled else 'enabled'} {user.email}")
    return 0


def run_disable(args: argparse.Namespace) -> int:
    return _set_disabled(args.user, True)


def run_enable(args: argparse.Namespace) -> int:
    return _set_disabled(args.user, False)


def run_unlock(args: argparse.Namespace) -> int:
    services = _services()
    try:
        user = services.admin.find_user(args.user)
        services.admin.unlock_user(user.id)
    finally:
        services.database.dispose()
    print(f"unlocked {user.email}")
    return 0


def run_remove_mfa(args: argparse.Namespace) -> int:
    services = _services()
    try:
        user = services.admin.find_user(args.user)
        services.factors.remove_factors(user.id, admin_id="cli")
    finally:
        services.database.dispose()
    print(f"removed the second factors of {user.email}")
    return 0


def run_delete(args: argparse.Namespace) -> int:
    services = _services()
    try:
        user = services.admin.find_user(args.user)
        services.admin.delete_user(user.id)
    finally:
        services.database.dispose()
    print(f"deleted {user.email}")
    return 0


def run_set_role(args: argparse.Namespace) -> int:
    services = _services()
    try:
        user = services.admin.set_roles(services.admin.find_user(args.user).id, tuple(args.roles))
    finally:
        services.database.dispose()
    print(f"{user.email} roles={','.join(user.roles)}")
    return 0


def run_set_password(args: argparse.Namespace) -> int:
    password = _read_password()
    services = _services()
    try:
        user = services.admin.set_password(services.admin.find_user(args.user).id, password)
    finally:
        services.database.dispose()
    print(f"password set for {user.email}; their sessions have ended")
    return 0
