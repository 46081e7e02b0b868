"""Hostile clients of a running `the-eye serve`, each a thread, all in one process run by
`attack` for a bounded time: what the attack test throws at the server."""

from __future__ import annotations

import contextlib
import gzip
import secrets
import socket
import threading
import time
from collections.abc import Callable

import httpx


def _gzip_bombs(url: str, port: int, key: str, stop: threading.Event) -> None:
    """Keyless gzip bodies that inflate to millions of JSON zeros."""
    bomb = gzip.compress(b"[" + b"0," * 2_499_999 + b"0]", 9)
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    with httpx.Client(base_url=url, timeout=10) as client:
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError):
                client.post("/events/", content=bomb, headers=headers)


def _random_keys(url: str, port: int, key: str, stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        while not stop.is_set():
            guess = {"Authorization": f"Bearer eye_wk_{secrets.token_urlsafe(24)}"}
            with contextlib.suppress(httpx.HTTPError):
                client.post("/events/", json={"category": "x", "name": "y"}, headers=guess)


def _slow_headers(url: str, port: int, key: str, stop: threading.Event) -> None:
    """100 connections sending their headers a few bytes a second, reopened when cut."""
    sockets: list[socket.socket | None] = [None] * 100
    while not stop.is_set():
        for i, sock in enumerate(sockets):
            try:
                if sock is None:
                    sock = sockets[i] = socket.create_connection(("127.0.0.1", port), 5)
                    sock.sendall(b"POST /events/ HTTP/1.1\r\nHost: x\r\n")
                sock.sendall(b"X-a: b\r\n")
            except OSError:
                if sock is not None:
                    sock.close()
                sockets[i] = None
        stop.wait(0.5)
    for sock in sockets:
        if sock is not None:
            sock.close()


def _huge_headers(url: str, port: int, key: str, stop: threading.Event) -> None:
    header = b"X-Big: " + b"a" * (1024 * 1024) + b"\r\n"
    while not stop.is_set():
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 5) as s:
            s.sendall(b"GET /health/ HTTP/1.1\r\nHost: x\r\n")
            for _ in range(64):  # up to 64 MiB
                s.sendall(header)
        stop.wait(0.05)


def _over_long_with_a_key(url: str, port: int, key: str, stop: threading.Event) -> None:
    """A valid key: unfinished 5 MiB bodies, bodies over the limit, too many events."""
    auth = f"Authorization: Bearer {key}\r\n".encode()
    too_many = [{"category": "x", "name": "y"}] * 6000
    oversized = b"[" + b" " * (6 * 1024 * 1024) + b"]"
    with httpx.Client(base_url=url, timeout=10, headers={"Authorization": f"Bearer {key}"}) as c:
        while not stop.is_set():
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", port), 5) as s,
            ):
                s.sendall(
                    b"POST /events/ HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Length: 5242880\r\n"
                    b"\r\n" + b"[" + b" " * 1_000_000
                )
                stop.wait(1)
            with contextlib.suppress(httpx.HTTPError):
                c.post("/events/", json=too_many)
            with contextlib.suppress(httpx.HTTPError):
                c.post("/events/", content=oversized)


HOSTILE: list[Callable[[str, int, str, threading.Event], None]] = [
    _gzip_bombs,
    _random_keys,
    _slow_headers,
    _huge_headers,
    _over_long_with_a_key,
]


def attack(url: str, port: int, key: str, seconds: float) -> None:
    """Run every hostile client at once for `seconds`."""
    stop = threading.Event()
    threads = [
        threading.Thread(target=client, args=(url, port, key, stop), daemon=True)
        for client in HOSTILE
    ]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(15)
