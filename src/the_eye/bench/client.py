"""A minimal keep-alive HTTP/1.1 client on asyncio protocols, cheap enough to generate load.

httpx and aiohttp spend more CPU per request than the server under test, which would make
the generator the bottleneck; this client sends prepared bytes and reads only the status
line and Content-Length.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import cast
from urllib.parse import urlencode

_HEAD_END = b"\r\n\r\n"
_LENGTH = b"\r\ncontent-length:"


def build_request(
    method: str,
    target: str,
    host: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> bytes:
    """The raw bytes of one HTTP/1.1 request."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def query_target(path: str, params: dict[str, str | int]) -> str:
    """A request target with its query string."""
    return f"{path}?{urlencode(params)}" if params else path


class ResponseParser:
    """Splits a byte stream into complete responses, keeping only status and body."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add received bytes; return every response they complete."""
        self._buffer += data
        done: list[tuple[int, bytes]] = []
        while True:
            end = self._buffer.find(_HEAD_END)
            if end < 0:
                return done
            head = bytes(self._buffer[:end]).lower()
            at = head.find(_LENGTH)
            if at < 0:
                # Every server under test sets Content-Length; anything else is a broken reply.
                raise ConnectionError("response without Content-Length")
            stop = head.find(b"\r\n", at + 2)
            length = int(head[at + len(_LENGTH) : stop if stop > 0 else None])
            total = end + 4 + length
            if len(self._buffer) < total:
                return done
            status = int(head[9:12])
            body = bytes(self._buffer[end + 4 : total])
            del self._buffer[:total]
            done.append((status, body))


class _Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._parser = ResponseParser()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            responses = self._parser.feed(data)
        except (ConnectionError, ValueError) as exc:
            self._fail(ConnectionError(str(exc)))
            return
        if responses and self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(responses[-1])

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionError("connection closed by the server"))

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)


@dataclass(slots=True)
class Response:
    """A response as the benchmark needs it."""

    status: int
    body: bytes


class Client:
    """Sequential requests over one keep-alive connection, reconnecting when it drops."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._conn: _Connection | None = None

    async def _connection(self) -> _Connection:
        if self._conn is None or self._conn.closed:
            loop = asyncio.get_running_loop()
            _, self._conn = await loop.create_connection(_Connection, self.host, self.port)
        return self._conn

    async def send(self, raw: bytes, timeout: float = 30.0) -> Response:
        """Send prepared request bytes and wait for the response."""
        conn = await self._connection()
        loop = asyncio.get_running_loop()
        conn._waiter = loop.create_future()
        assert conn.transport is not None
        conn.transport.write(raw)
        status, body = await asyncio.wait_for(conn._waiter, timeout)
        return Response(status, body)

    async def get(self, target: str, headers: dict[str, str] | None = None) -> Response:
        return await self.send(
            build_request("GET", target, f"{self.host}:{self.port}", b"", headers)
        )

    def close(self) -> None:
        if self._conn is not None and self._conn.transport is not None:
            self._conn.transport.close()
        self._conn = None


class Deadline:
    """When a load run ends, in loop time; moved earlier to stop a run before its time."""

    def __init__(self, at: float) -> None:
        self.at = at


class LoadConnection(asyncio.Protocol):
    """A connection that sends the next request the moment a response completes.

    Driven by callbacks, not coroutines, so one process can keep dozens of connections
    busy; `on_response(status, latency_s)` is told about each answer.
    """

    def __init__(
        self,
        requests: list[bytes],
        first: int,
        deadline: Deadline,
        on_response: Callable[[int, float], None],
        finished: asyncio.Future[None],
    ) -> None:
        self._requests, self._index = requests, first
        self._deadline, self._on_response, self._finished = deadline, on_response, finished
        self._parser = ResponseParser()
        self._loop = asyncio.get_running_loop()
        self._sent_at = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def start(self) -> None:
        self._send_next()

    def _send_next(self) -> None:
        if self._loop.time() >= self._deadline.at:
            self._finish()
            return
        raw = self._requests[self._index % len(self._requests)]
        self._index += 1
        # uvloop's clock ticks in milliseconds: too coarse for latencies.
        self._sent_at = perf_counter()
        assert self.transport is not None
        self.transport.write(raw)

    def data_received(self, data: bytes) -> None:
        try:
            responses = self._parser.feed(data)
        except (ConnectionError, ValueError):
            self._on_response(0, 0.0)
            self._finish()
            return
        if responses:
            now = perf_counter()
            for status, _ in responses:
                self._on_response(status, now - self._sent_at)
            self._send_next()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._finished.done():
            # A dropped connection mid-run counts as a socket error, like wrk counts it.
            self._on_response(0, 0.0)
        self._finish()

    def _finish(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        if not self._finished.done():
            self._finished.set_result(None)
