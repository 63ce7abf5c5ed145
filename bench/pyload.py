"""A Python load generator for when wrk is missing, and for the side traffic of `mixed`.

Closed loop over keep-alive HTTP/1.1 connections on raw asyncio streams (uvloop when
installed); with --rate, each connection paces itself instead. Bounded by --duration.
Prints one `BENCH_JSON {...}` line shaped like the wrk scripts' (bench/lua/common.lua).

    python -m bench.pyload --url http://127.0.0.1:8000 --workload get --path /healthz
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    non2xx: int = 0
    errors: int = 0
    lost: int = 0


class Workload:
    """Makes the next request of a connection and learns from its response."""

    def next_request(self) -> tuple[bytes, object]:
        raise NotImplementedError

    def on_response(self, status: int, body: bytes, token: object, tally: Tally) -> None:
        if not 200 <= status <= 299:
            tally.non2xx += 1


def _request(host: str, method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body or method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Get(Workload):
    def __init__(self, host: str, path: str, tokens: list[str]) -> None:
        self.prepared = [
            _request(host, "GET", path, {"Authorization": f"Bearer {token}"}, b"")
            for token in tokens
        ] or [_request(host, "GET", path, {}, b"")]
        self.turn = 0

    def next_request(self) -> tuple[bytes, object]:
        self.turn = (self.turn + 1) % len(self.prepared)
        return self.prepared[self.turn], None


class Refresh(Workload):
    """Each refresh token is sent once; only its successor goes back in the queue."""

    def __init__(self, host: str, tokens: list[str]) -> None:
        self.host = host
        self.queue: deque[str] = deque(tokens)

    def next_request(self) -> tuple[bytes, object]:
        token = self.queue.popleft() if self.queue else "ktr_no_chain_left"
        body = json.dumps({"refresh_token": token}).encode()
        return _request(self.host, "POST", "/api/auth/refresh", {}, body), token

    def on_response(self, status: int, body: bytes, token: object, tally: Tally) -> None:
        if status == 200:
            self.queue.append(json.loads(body)["refresh_token"])
            return
        tally.non2xx += 1
        tally.lost += 1


class Login(Workload):
    def __init__(self, host: str, credentials: list[tuple[str, str]]) -> None:
        self.prepared = [
            _request(
                host,
                "POST",
                "/api/auth/login",
                {},
                json.dumps({"email": email, "password": password}).encode(),
            )
            for email, password in credentials
        ]
        self.turn = 0

    def next_request(self) -> tuple[bytes, object]:
        self.turn = (self.turn + 1) % len(self.prepared)
        return self.prepared[self.turn], None


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    return status, body


async def _connection(
    host: str,
    port: int,
    workload: Workload,
    tally: Tally,
    *,
    deadline: float,
    interval: float | None,
) -> None:
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    next_at = time.perf_counter()
    while time.perf_counter() < deadline:
        if interval is not None:
            next_at += interval
            pause = next_at - time.perf_counter()
            if pause > 0:
                await asyncio.sleep(min(pause, max(0.0, deadline - time.perf_counter())))
                if time.perf_counter() >= deadline:
                    break
        try:
            if reader is None or writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            request, token = workload.next_request()
            started = time.perf_counter()
            status, body = await asyncio.wait_for(_exchange(reader, writer, request), 10)
            tally.latencies.append(time.perf_counter() - started)
            workload.on_response(status, body, token, tally)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            tally.errors += 1
            if writer is not None:
                writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def percentile(sorted_values: list[float], share: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(share * len(sorted_values)) - 1))
    return sorted_values[index]


async def drive(
    url: str,
    workload: Workload,
    *,
    connections: int,
    duration: float,
    rate: float | None = None,
) -> dict[str, float | int]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    tally = Tally()
    started = time.perf_counter()
    deadline = started + duration
    interval = connections / rate if rate else None
    await asyncio.gather(
        *(
            _connection(host, port, workload, tally, deadline=deadline, interval=interval)
            for _ in range(connections)
        )
    )
    elapsed = time.perf_counter() - started
    values = sorted(tally.latencies)
    return {
        "requests": len(values),
        "duration_s": elapsed,
        "errors": tally.errors,
        "status_errors": tally.non2xx,
        "non2xx_counted": tally.non2xx,
        "lost_chains": tally.lost,
        "p50_ms": percentile(values, 0.50) * 1000,
        "p90_ms": percentile(values, 0.90) * 1000,
        "p99_ms": percentile(values, 0.99) * 1000,
        "max_ms": (values[-1] if values else 0.0) * 1000,
    }


def make_workload(kind: str, url: str, *, path: str, data: Path | None) -> Workload:
    host = urlsplit(url).netloc
    lines = data.read_text().splitlines() if data else []
    if kind == "get":
        return Get(host, path, lines)
    if kind == "refresh":
        return Refresh(host, lines)
    if kind == "login":
        pairs = [tuple(line.split("\t", 1)) for line in lines]
        return Login(host, [(email, password) for email, password in pairs])
    raise ValueError(f"unknown workload {kind}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--workload", choices=["get", "refresh", "login"], required=True)
    parser.add_argument("--path", default="/healthz")
    parser.add_argument("--data", type=Path, help="tokens, or email<TAB>password, one a line")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rate", type=float, help="total requests per second (paced)")
    args = parser.parse_args()
    workload = make_workload(args.workload, args.url, path=args.path, data=args.data)
    run = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        run = uvloop.run
    result = run(
        drive(
            args.url,
            workload,
            connections=args.connections,
            duration=args.duration,
            rate=args.rate,
        )
    )
    print("BENCH_JSON " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
