"""The HTTP servers `keyturn serve` can run Keyturn's ASGI app under: uvicorn (the default)
and granian. Both get the same promises: Keyturn's JSON logging, no access log of their own
(Keyturn's middleware writes it), no proxy headers trusted (Keyturn reads X-Forwarded-For
itself, from trusted proxies only), no `server` header, a bounded graceful shutdown."""

from __future__ import annotations

import multiprocessing
from typing import Final

from keyturn.observability.logging import logging_config

APP_FACTORY: Final = "keyturn.http.app:app_from_environment"
SERVERS: Final = ("granian", "uvicorn")
# In-flight requests get this long to finish after SIGTERM or SIGINT.
GRACEFUL_SECONDS: Final = 5
# A granian worker is killed if it has not ended this long after being asked to: the
# requests' grace above, then the app's own shutdown (background tasks, pools).
_GRANIAN_KILL_SECONDS: Final = GRACEFUL_SECONDS + 5


class ServerFailedError(Exception):
    """The server stopped with an error; its own log line says why."""


def run_server(name: str, *, host: str, port: int, workers: int, log_level: str) -> None:
    if name == "uvicorn":
        _run_uvicorn(host=host, port=port, workers=workers, log_level=log_level)
    else:
        _run_granian(host=host, port=port, workers=workers, log_level=log_level)


def _run_granian(*, host: str, port: int, workers: int, log_level: str) -> None:
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.log import LogLevels
    from granian.server import Server

    # Workers start fresh rather than forked from this process: this one has imported the
    # metrics before PROMETHEUS_MULTIPROC_DIR was set and opened the database once.
    multiprocessing.set_start_method("spawn", force=True)
    server = Server(
        APP_FACTORY,
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        loop=Loops.auto,
        http=HTTPModes.http1,
        websockets=False,
        log_level=LogLevels(log_level.lower()),
        log_dictconfig=logging_config(log_level),
        log_access=False,
        workers_kill_timeout=_GRANIAN_KILL_SECONDS,
    )
    try:
        server.serve()
    except SystemExit as stop:
        # granian exits 1 when a worker could not start or died: its log line says why.
        if stop.code not in (None, 0):
            raise ServerFailedError from None
        raise
    except (OSError, RuntimeError) as error:
        # granian's bind fails with a RuntimeError whose text is the OS error, then a
        # native backtrace: the first line is the reason.
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ServerFailedError(reason) from error


def _run_uvicorn(*, host: str, port: int, workers: int, log_level: str) -> None:
    import uvicorn

    try:
        uvicorn.run(
            APP_FACTORY,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            loop="auto",
            http="auto",
            access_log=False,
            proxy_headers=False,
            server_header=False,
            log_level=log_level.lower(),
            log_config=logging_config(log_level),
            timeout_graceful_shutdown=GRACEFUL_SECONDS,
        )
    except SystemExit as stop:
        # uvicorn exits 3 (or 1) when it cannot start, e.g. the port was taken after the
        # address check: its own log line says why.
        if stop.code not in (None, 0):
            raise ServerFailedError from None
        raise
