"""Tools for tests of several Keyturn processes: which worker serves a connection, a Redis
server of the test's own to kill and restart, and a TCP proxy that can cut the database."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.api import DEFAULT_PASSWORD, bearer
from tests.support.processes import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def error(self) -> tuple[int, str]:
        return self.status, str(self.body.get("error", ""))


class Caller:
    """Something that sends requests to one Keyturn process (or one worker of one)."""

    name = "?"

    def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        raise NotImplementedError


class HttpxCaller(Caller):
    def __init__(self, base_url: str, name: str) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=10)
        self.name = name

    def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        response = self.client.request(method, path, json=json_body, headers=headers)
        body = response.json() if response.content else {}
        return Reply(response.status_code, body, dict(response.headers))

    def close(self) -> None:
        self.client.close()


class WorkerConnection(Caller):
    """One kept-alive HTTP connection; `pid` is the worker process the kernel handed it to,
    read from /proc (the server says nothing about its workers)."""

    def __init__(self, port: int, *, group: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.connection.connect()
        self.port = port
        self.group = group
        self.call("GET", "/healthz")  # accepted by now, so the socket belongs to a worker
        self.pid = self.current_pid()
        self.name = f"worker {self.pid}"

    def current_pid(self) -> int | None:
        sock = self.connection.sock
        assert sock is not None, "the connection was closed"
        return serving_pid(self.port, sock.getsockname()[1], group=self.group)

    def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        payload = None if json_body is None else json.dumps(json_body).encode()
        sent = {"Content-Type": "application/json", **(headers or {})}
        self.connection.request(method, path, body=payload, headers=sent)
        response = self.connection.getresponse()
        raw = response.read()
        # A worker that closed the connection would make the next request open a new one,
        # perhaps to the other worker: refuse to go on unnoticed.
        assert response.getheader("connection", "").lower() != "close", "connection closed"
        body = json.loads(raw) if raw else {}
        return Reply(response.status, body, {k.lower(): v for k, v in response.getheaders()})

    def close(self) -> None:
        self.connection.close()


def serving_pid(server_port: int, client_port: int, *, group: int) -> int | None:
    """The pid, among the processes of `group`, holding the server side of a connection."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if (local_port, remote_port) == (server_port, client_port) and fields[9] != "0":
                    inode = fields[9]
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in processes_in_group(group):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                        return pid
    return None


def processes_in_group(group: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            # Fields after the parenthesised command: state, ppid, pgrp, ...
            if int(stat.rsplit(")", 1)[1].split()[2]) == group:
                found.append(int(entry))
    return found


def connections_to_each_worker(
    port: int, *, group: int, workers: int, within: float = 60.0
) -> list[WorkerConnection]:
    """Open connections until one is held by each of `workers` distinct processes.

    A worker that is still importing Keyturn accepts nothing, so on a loaded machine every
    connection of the first seconds can land on the one that is ready: keep trying, with a
    pause, until the deadline rather than for a fixed number of connections."""
    kept: dict[int, WorkerConnection] = {}
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        connection = WorkerConnection(port, group=group)
        if connection.pid is not None and connection.pid not in kept:
            kept[connection.pid] = connection
            if len(kept) == workers:
                return list(kept.values())
        else:
            connection.close()
            time.sleep(0.05)
    for connection in kept.values():
        connection.close()
    raise AssertionError(f"connections for {within:.0f} s reached only workers {sorted(kept)}")


class RedisServer:
    """A redis-server of the test's own on a free port, with no persistence: kill it and
    start it again, and it comes back empty (the worst case for Keyturn)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as probe,
            ):
                probe.sendall(b"PING\r\n")
                if probe.recv(16).startswith(b"+PONG"):
                    return self
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def client(self) -> Any:
        import redis

        return redis.Redis.from_url(self.url)


class TcpProxy:
    """Forwards a local port to `upstream`; `cut()` drops every connection and refuses new
    ones (the database has gone away), `restore()` listens again on the same port."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, target):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for end in sockets:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    restore = start


# Steps the multi-process scenarios share.


def session_id_of(access_token: str) -> str:
    payload = access_token.split(".")[1]
    sid: str = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sid"]
    return sid


def log_in(caller: Caller, email: str, password: str = DEFAULT_PASSWORD, ip: str = "") -> Reply:
    headers = {"X-Forwarded-For": ip} if ip else {}
    return caller.call(
        "POST", "/api/auth/login", json_body={"email": email, "password": password}, headers=headers
    )


def new_user(caller: Caller, email: str) -> dict[str, str]:
    created = caller.call(
        "POST", "/api/auth/register", json_body={"email": email, "password": DEFAULT_PASSWORD}
    )
    assert created.status == 201, created.body
    tokens = log_in(caller, email)
    assert tokens.status == 200, tokens.body
    return tokens.body


def refused_within(caller: Caller, access_token: str, *, seconds: float) -> float:
    started = time.monotonic()
    while True:
        me = caller.call("GET", "/api/auth/me", headers=bearer(access_token))
        elapsed = time.monotonic() - started
        if me.error == (401, "invalid_token"):
            return elapsed
        assert me.status == 200, me.body
        assert elapsed < seconds, f"{caller.name} still accepts the token after {elapsed:.2f} s"
        time.sleep(0.02)
