"""`the-eye serve`'s HTTP protocol under slow and oversized requests: each is cut, answered
408 or 431 when it can be, while honest requests go on."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import make_event
from tests.processes import ServeProcess, the_eye_env
from the_eye.queue.db import inbox_file

pytestmark = pytest.mark.slow

TIMEOUT = 1.0


@pytest.fixture(scope="module")
def serve_db(tmp_path_factory) -> Path:
    """The SQLite file `serve` stores in (its inbox in a file beside it)."""
    return tmp_path_factory.mktemp("serve") / "the-eye.db"


@pytest.fixture(scope="module")
def serve(serve_db) -> Iterator[tuple[ServeProcess, str]]:
    """A real `the-eye serve` with one-second header and body timeouts."""
    from the_eye.config import Settings

    db = serve_db
    settings = Settings(database_url=f"sqlite:///{db}", _env_file=None)
    env = the_eye_env(settings, header_timeout=TIMEOUT, body_timeout=TIMEOUT)
    process = ServeProcess(env, "--processors", "0").start()
    try:
        yield process, process.read_first_start()["write_key"]
    finally:
        process.stop()


def connect(process: ServeProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", process.port), timeout=10)
    return sock


def answer_and_close(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took."""
    started, received = time.monotonic(), b""
    while chunk := sock.recv(65536):
        received += chunk
    return received, time.monotonic() - started


def test_partial_headers_are_answered_408_and_cut(serve):
    process, _ = serve
    with connect(process) as sock:
        sock.sendall(b"POST /events/ HTTP/1.1\r\nHost: x\r\n")
        received, waited = answer_and_close(sock)
    assert received.startswith(b"HTTP/1.1 408 ")
    assert b'"request_timeout"' in received
    assert waited < TIMEOUT + 3


def test_a_connection_that_sends_nothing_is_cut(serve):
    process, _ = serve
    with connect(process) as sock:
        received, waited = answer_and_close(sock)
    assert received.startswith(b"HTTP/1.1 408 ")
    assert waited < TIMEOUT + 3


def test_headers_sent_a_byte_at_a_time_are_cut_at_the_deadline(serve):
    process, _ = serve
    with connect(process) as sock:
        sock.settimeout(0.2)
        started, closed = time.monotonic(), False
        request = b"GET /health/ HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
                if sock.recv(65536) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except OSError:
                closed = True
                break
        assert closed
    assert time.monotonic() - started < TIMEOUT + 3


def test_oversized_headers_are_431(serve):
    process, _ = serve
    with connect(process) as sock:
        sock.sendall(b"GET /health/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 32_768 + b"\r\n\r\n")
        received, _ = answer_and_close(sock)
    assert received.startswith(b"HTTP/1.1 431 ")
    assert b'"headers_too_large"' in received


def test_an_endless_header_is_cut_after_the_bound(serve):
    """A header that never ends: refused once the bound is passed, not buffered for ever."""
    process, _ = serve
    with connect(process) as sock:
        sock.sendall(b"GET /health/ HTTP/1.1\r\nHost: x\r\nX-Endless: ")
        sent = 0
        try:
            for _ in range(1000):  # up to 64 MiB
                sock.sendall(b"a" * 65_536)
                sent += 65_536
        except OSError:
            pass
        received = b""
        with contextlib.suppress(OSError):
            received, _ = answer_and_close(sock)
    assert sent < 16 * 1024 * 1024
    assert received == b"" or received.startswith(b"HTTP/1.1 431 ")


def test_an_unfinished_body_is_cut_and_nothing_queued(serve):
    process, key = serve
    with connect(process) as sock:
        sock.sendall(
            b"POST /events/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {key}\r\n".encode()
            + b"Content-Length: 100000\r\n\r\n"
            + b'[{"session_id": "s", "cat'
        )
        received, waited = answer_and_close(sock)
    assert received.startswith(b"HTTP/1.1 408 ")
    assert waited < TIMEOUT + 3
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=process.url, headers=headers, timeout=10) as client:
        assert client.post("/events/", json=make_event()).status_code == 202
        assert client.get("/health/").status_code == 200


def test_a_pipelined_request_never_answers_ahead_of_the_one_before_it(serve, serve_db):
    """Request 1 is complete but slow to answer (the test holds the inbox's write lock past
    the body timeout); request 2 follows on the same connection with half a body. The first
    answer on the wire is request 1's 202: a 408 there would read as its answer, and a
    client retrying it would store its events twice."""
    process, key = serve
    event = b'[{"session_id": "s", "category": "c", "action": "a", "data": {"k": 1}}]'
    head = (
        b"POST /events/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {key}\r\n".encode()
    )
    first = head + f"Content-Length: {len(event)}\r\n\r\n".encode() + event
    second = head + b"Content-Length: 1000\r\n\r\n" + event[:10]
    with connect(process) as sock:
        # Key checked and cached first, so that only the queue's write waits for the lock.
        sock.sendall(first)
        assert answer_and_close_after(sock, 1).startswith(b"HTTP/1.1 202 ")
        blocker = sqlite3.connect(inbox_file(serve_db), isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            sock.sendall(first + second)
            time.sleep(TIMEOUT * 2.5)  # request 2's body deadline passes meanwhile
        finally:
            blocker.rollback()
            blocker.close()
        received, _ = answer_and_close(sock)
    assert received.startswith(b"HTTP/1.1 202 "), received[:200]
    assert received.count(b"HTTP/1.1 ") == 2  # then request 2's 408, and the end
    assert b"HTTP/1.1 408 " in received


def answer_and_close_after(sock: socket.socket, answers: int) -> bytes:
    """The next `answers` answers on a kept-alive connection (each with a content-length)."""
    received = b""
    while received.count(b"HTTP/1.1 ") < answers or not received.endswith(b"}"):
        chunk = sock.recv(65536)
        assert chunk, received
        received += chunk
    return received
