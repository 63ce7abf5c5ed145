"""`keyturn serve`: migrate, make sure a signing key exists, then run the HTTP server
(uvicorn by default, granian with `--server granian`)."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import socket
import sys
import tempfile
from typing import Any

from keyturn.cli.servers import SERVERS, ServerFailedError, run_server


def register(commands: Any) -> None:
    parser = commands.add_parser("serve", help="run the HTTP server")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=port_number, default=8000, help="port to bind (8000)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (1)")
    parser.add_argument(
        "--server", choices=SERVERS, default="uvicorn", help="HTTP server to run (uvicorn)"
    )
    parser.set_defaults(handler=run)


def port_number(text: str) -> int:
    """A TCP port, 1-65535: the OS would read 0 as "any free port" and fold larger ones."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is outside 1-65535")
    return port


def check_address_free(host: str, port: int) -> None:
    """Bind the address once, as the server will, so that a port in use (or a host that is
    not ours) is one clear line here instead of a log line from deep inside the server."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        reason = error.strerror or str(error)
        raise ValueError(f"cannot listen on {host}:{port}: {reason}") from error


# glibc raises its mmap threshold to the size of the largest block freed, so after the first
# Argon2 hash (19 MiB) every later one comes from a thread's arena and stays resident: tens
# of MB per thread that ever hashed. A fixed threshold keeps big blocks mmap'd, returned
# to the system on free.
_MMAP_THRESHOLD_BYTES = 1 << 20
_M_MMAP_THRESHOLD = -3


def tune_allocator() -> None:
    """Fix glibc's mmap threshold in this process and (by environment) in worker processes."""
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(_MMAP_THRESHOLD_BYTES))
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)


def run(args: argparse.Namespace) -> int:
    # Imported here: `keyturn --help` and usage mistakes need none of the server.
    from keyturn.config import Settings
    from keyturn.observability.metrics import MULTIPROCESS_ENV
    from keyturn.services.container import build_services
    from keyturn.services.identity import pin_issuer
    from keyturn.services.sealing import seal_stored_secrets
    from keyturn.storage.migrations import upgrade_database

    if args.workers < 1:
        raise ValueError("--workers must be at least 1")
    tune_allocator()
    if "KEYTURN_ISSUER" not in os.environ:
        host = "localhost" if args.host in ("0.0.0.0", "::") else args.host  # noqa: S104
        os.environ["KEYTURN_ISSUER"] = f"http://{host}:{args.port}"
    settings = Settings()
    problems = settings.configuration_problems() + settings.production_problems()
    if problems:
        raise ValueError("refusing to start: " + " ".join(problems))
    check_address_free(args.host, args.port)
    # Done once here, before any worker starts, so workers never race to create them.
    services = build_services(settings)
    upgrade_database(services.database)
    seal_stored_secrets(services.database, services.sealer)
    pin_issuer(
        services.database, settings.effective_issuer, sealer=services.sealer, clock=services.clock
    )
    services.keyring.ensure_signing_key()
    services.database.dispose()
    with contextlib.ExitStack() as stack:
        if args.workers > 1 and not os.environ.get(MULTIPROCESS_ENV):
            # Workers start after this and count into files here; /metrics sums them all.
            metrics_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="keyturn-"))
            os.environ[MULTIPROCESS_ENV] = metrics_dir
        try:
            run_server(
                args.server,
                host=args.host,
                port=args.port,
                workers=args.workers,
                log_level=settings.log_level,
            )
        except ServerFailedError as error:
            reason = f": {error}" if str(error) else "; its log line above says why"
            raise ValueError(f"the server could not start or stopped{reason}") from None
    return 0
