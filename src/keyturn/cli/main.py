"""`keyturn`: parse the command line, run one command, print `keyturn: <message>` on failure."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from keyturn import __version__
from keyturn.cli import db, keys, serve, users
from keyturn.errors import KeyturnError

if TYPE_CHECKING:
    from sqlalchemy.exc import SQLAlchemyError


class CommandError(Exception):
    """A failure the CLI reports in one line."""


class OneLineParser(argparse.ArgumentParser):
    """Usage mistakes read like every other refusal: one `keyturn: ` line, exit 1.

    Subcommand parsers are made of the same class, so this holds for all of them."""

    def error(self, message: str) -> NoReturn:
        self.exit(1, f"keyturn: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="keyturn",
        description="Keyturn authentication server. Settings come from KEYTURN_* variables"
        " and ./.env.",
    )
    parser.add_argument("--version", action="version", version=f"keyturn {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.register(commands)
    users.register(commands)
    db.register(commands)
    keys.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # After parsing: help and usage mistakes end above, without loading these.
    from pydantic import ValidationError
    from sqlalchemy.exc import SQLAlchemyError

    from keyturn.core.sealing import SealingError

    try:
        code: int = args.handler(args)
        return code
    except KeyturnError as error:
        print(f"keyturn: {error.message}", file=sys.stderr)
    except ValidationError as error:
        problems = "; ".join(
            f"KEYTURN_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in error.errors()
        )
        print(f"keyturn: invalid setting: {problems}", file=sys.stderr)
    except SQLAlchemyError as error:
        print(f"keyturn: cannot use the database: {_first_line(error)}", file=sys.stderr)
    except OSError as error:
        where = f": {error.filename}" if error.filename else ""
        print(f"keyturn: {error.strerror or error}{where}", file=sys.stderr)
    except (CommandError, SealingError, ValueError) as error:
        print(f"keyturn: {error}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    return 1


def _first_line(error: SQLAlchemyError) -> str:
    """The driver's own sentence (`database "x" does not exist`, `connection refused`),
    without SQLAlchemy's statement dump and links that follow it."""
    cause = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines else type(cause).__name__


if __name__ == "__main__":
    sys.exit(main())
