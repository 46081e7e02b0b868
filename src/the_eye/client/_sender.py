"""Sending one batch to The Eye over HTTP/1.1, with the standard library, retrying what may
succeed later."""

from __future__ import annotations

import gzip
import http.client
import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit

from the_eye import __version__
from the_eye.client._retry import RetryPolicy, parse_retry_after

log = logging.getLogger(__name__)

# Waits `seconds` before a retry; False means give up now (the client is shutting down).
Pause = Callable[[float], bool]

# A kept-alive connection the server has closed fails on its next use; that request never
# reached the server, so it is sent again at once on a new connection.
_STALE_CONNECTION = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class DeliveryError(Exception):
    """A batch The Eye did not take: its answer (status, error code) or the network failure."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        code: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message, self.status, self.code = message, status, code
        self.retryable, self.retry_after = retryable, retry_after
        self.attempts = 1

    def __str__(self) -> str:
        where = f"{self.status} {self.code}: " if self.status else ""
        return f"{where}{self.message} (after {self.attempts} attempt(s))"


def _answer_error(
    status: int, body: bytes, retry_after: str | None, policy: RetryPolicy
) -> DeliveryError:
    try:
        error = json.loads(body)["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        # Not The Eye's error body (a proxy's page, say): keep the start of its text.
        code = None
        message = body[:200].decode("utf-8", "replace") or http.client.responses.get(status, "")
    return DeliveryError(
        message,
        status=status,
        code=code,
        retryable=policy.retries(status),
        retry_after=parse_retry_after(retry_after),
    )


class Sender:
    """POSTs batches of encoded events to `<host>/events/` on one kept-alive connection."""

    def __init__(
        self,
        host: str,
        write_key: str,
        *,
        retry: RetryPolicy,
        timeout: float = 10.0,
        compress: bool = True,
    ) -> None:
        url = urlsplit(host if "://" in host else f"http://{host}")
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"host must be an http:// or https:// URL, not {host!r}")
        self._https = url.scheme == "https"
        self._netloc = url.netloc
        self._path = url.path.rstrip("/") + "/events/"
        self._headers = {
            "Authorization": f"Bearer {write_key}",
            "Content-Type": "application/json",
            "User-Agent": f"the-eye-python/{__version__}",
        }
        if compress:
            self._headers["Content-Encoding"] = "gzip"
        self.retry, self.timeout, self.compress = retry, timeout, compress
        self.retries = 0  # how many times any batch was sent again
        self._connection: http.client.HTTPConnection | None = None
        self._connection_was_reused = False
        self._lock = threading.Lock()

    def send(self, events: list[bytes], pause: Pause) -> None:
        """Deliver one batch, retrying as the policy says; raise `DeliveryError` if it fails."""
        attempt = 0
        while True:
            try:
                error = self._post_once(events)
            except (OSError, http.client.HTTPException) as exc:
                error = DeliveryError(
                    f"no answer from The Eye ({type(exc).__name__}: {exc})", retryable=True
                )
            if error is None:
                return
            error.attempts = attempt + 1
            if not error.retryable or attempt >= self.retry.max_retries:
                raise error
            wait = self.retry.delay(attempt, error.retry_after)
            log.warning("sending %d events failed (%s); retry in %.1fs", len(events), error, wait)
            if not pause(wait):
                raise error
            attempt += 1
            self.retries += 1

    def _post_once(self, events: list[bytes]) -> DeliveryError | None:
        sent_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        body = b'{"batch":[' + b",".join(events) + b'],"sent_at":"' + sent_at.encode() + b'"}'
        if self.compress:
            body = gzip.compress(body, compresslevel=6, mtime=0)
        with self._lock:
            try:
                status, answer, retry_after = self._request(body)
            except _STALE_CONNECTION:
                if self._connection_was_reused:
                    status, answer, retry_after = self._request(body)
                else:
                    raise
        if 200 <= status < 300:
            return None
        return _answer_error(status, answer, retry_after, self.retry)

    def _request(self, body: bytes) -> tuple[int, bytes, str | None]:
        self._connection_was_reused = self._connection is not None
        if self._connection is None:
            factory = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._connection = factory(self._netloc, timeout=self.timeout)
        try:
            self._connection.request("POST", self._path, body, self._headers)
            response = self._connection.getresponse()
            answer = response.read()
        except BaseException:
            self._drop_connection()
            raise
        if response.will_close:
            self._drop_connection()
        return response.status, answer, response.getheader("Retry-After")

    def _drop_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def close(self) -> None:
        """Close the connection, unless a send still uses it (a shutdown that timed out)."""
        if self._lock.acquire(blocking=False):
            try:
                self._drop_connection()
            finally:
                self._lock.release()

    def forget_after_fork(self) -> None:
        """In a forked child: drop, without closing, the parent's connection and lock."""
        self._connection = None
        self._lock = threading.Lock()
