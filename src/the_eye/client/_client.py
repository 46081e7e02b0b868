"""`EyeClient`: track events from Python and have them delivered to The Eye exactly once."""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from the_eye.client._batching import BatchingQueue
from the_eye.client._retry import RetryPolicy
from the_eye.client._sender import DeliveryError, Pause, Sender

log = logging.getLogger(__name__)

# Called from the sending thread with the error and the events it gave up on.
OnError = Callable[[DeliveryError, list[dict[str, Any]]], None]


@dataclass(frozen=True, slots=True)
class ClientStats:
    """What a client did so far, in this process."""

    sent: int  # events The Eye accepted
    failed: int  # events given up on (see `on_error`)
    dropped: int  # events not queued: the queue was full, or the client shut down
    retries: int  # batches sent again after a failure
    pending: int  # events queued or being sent


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def new_event_id() -> str:
    """A UUID of version 7 (RFC 9562): the time in milliseconds, then 74 random bits.

    Ids made later sort later, so The Eye's index of event ids grows at its end instead of
    at random pages, and the random bits keep them unique and unguessable.
    """
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = value & ~(0xF << 76) | 0x7 << 76  # the version
    value = value & ~(0x3 << 62) | 0x2 << 62  # the variant
    return str(uuid.UUID(int=value))


def _timestamp(value: datetime | str | None) -> str:
    if value is None:
        return datetime.now(UTC).isoformat(timespec="microseconds")
    if isinstance(value, datetime):
        # A naive datetime is taken as UTC, as The Eye reads a timestamp without an offset.
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return aware.isoformat(timespec="microseconds")
    if isinstance(value, str):
        return value
    raise TypeError("timestamp must be a datetime, an ISO 8601 string or None")


def _require_text(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise TypeError(f"{name} must be a non-empty string, not {value!r}")


class EyeClient:
    """Sends events to The Eye.

    By default `track` only queues the event, and a background thread sends batches of up to
    `batch_size` events, at most `flush_interval` seconds after the first was queued, gzipped,
    retrying network errors, 429 and 5xx answers (honouring `Retry-After`) as `retry` says.
    Each event carries an id made here, so a batch sent twice is stored once. Whatever is
    queued is sent at interpreter exit (for up to `exit_timeout` seconds) and after `flush()`.
    After `fork()`, the child starts with an empty queue of its own.

    With `sync_mode=True`, `track` sends at once on the caller's thread (scripts, serverless).
    Failures never raise from `track`: they are logged on the `the_eye.client` logger and
    handed to `on_error(error, events)`.
    """

    def __init__(
        self,
        write_key: str,
        host: str = "http://127.0.0.1:8000",
        *,
        batch_size: int = 100,
        flush_interval: float = 0.5,
        max_queue_size: int = 10_000,
        max_batch_bytes: int = 1024 * 1024,
        retry: RetryPolicy | None = None,
        timeout: float = 10.0,
        gzip: bool = True,
        sync_mode: bool = False,
        on_error: OnError | None = None,
        exit_timeout: float = 10.0,
    ) -> None:
        _require_text("write_key", write_key)
        self.sync_mode, self.on_error, self.exit_timeout = sync_mode, on_error, exit_timeout
        self._sender = Sender(
            host, write_key, retry=retry or RetryPolicy(), timeout=timeout, compress=gzip
        )
        self._queue = BatchingQueue(
            self._deliver,
            batch_size=batch_size,
            flush_interval=flush_interval,
            max_queue_size=max_queue_size,
            max_batch_bytes=max_batch_bytes,
        )
        self._counts_lock = threading.Lock()
        self._sent = self._failed = 0
        _live_clients.add(self)

    def track(
        self,
        session_id: str,
        category: str,
        name: str,
        data: dict[str, Any],
        timestamp: datetime | str | None = None,
        event_id: str | None = None,
    ) -> str:
        """Queue (or, in sync mode, send) one event; its event id.

        `timestamp` defaults to now; `event_id` to a new time-ordered UUID (version 7).
        Raises `TypeError` or `ValueError` for arguments The Eye would reject outright.
        """
        _require_text("session_id", session_id)
        _require_text("category", category)
        _require_text("name", name)
        if not isinstance(data, dict) or not data:
            raise ValueError("data must be a dict with at least one key")
        if event_id is None:
            event_id = new_event_id()
        else:
            _require_text("event_id", event_id)
        event = {
            "event_id": event_id,
            "session_id": session_id,
            "category": category,
            "name": name,
            "data": data,
            "timestamp": _timestamp(timestamp),
        }
        # Encoded now, so that a value JSON cannot carry fails here, in the caller's code,
        # rather than spoiling a whole batch later.
        encoded = json.dumps(
            event, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default
        ).encode()
        if self.sync_mode:
            self._deliver([encoded], _sleep)
        else:
            self._queue.put(encoded)
        return event_id

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything queued so far and wait for it; True once sent or given up on."""
        return self._queue.flush(timeout)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush, then stop the sending thread; later events are dropped.

        Retries give up after `timeout` seconds. True when nothing was left unsent.
        """
        done = self._queue.close(timeout)
        self._sender.close()
        return done

    def stats(self) -> ClientStats:
        """Counts of what this client did in this process."""
        return ClientStats(
            sent=self._sent,
            failed=self._failed,
            dropped=self._queue.dropped,
            retries=self._sender.retries,
            pending=self._queue.pending,
        )

    @property
    def dropped(self) -> int:
        """Events dropped because the queue was full (or the client shut down)."""
        return self._queue.dropped

    def __enter__(self) -> EyeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def _deliver(self, batch: list[bytes], pause: Pause) -> None:
        try:
            self._sender.send(batch, pause)
        except DeliveryError as error:
            self._give_up(error, batch)
        except Exception as exc:  # a bug must not stop the sending thread
            log.exception("sending %d events to The Eye failed unexpectedly", len(batch))
            self._give_up(DeliveryError(f"{type(exc).__name__}: {exc}"), batch)
        else:
            with self._counts_lock:
                self._sent += len(batch)

    def _give_up(self, error: DeliveryError, batch: list[bytes]) -> None:
        with self._counts_lock:
            self._failed += len(batch)
        log.error("The Eye did not take %d events: %s", len(batch), error)
        if self.on_error is not None:
            try:
                self.on_error(error, [json.loads(event) for event in batch])
            except Exception:
                log.exception("the on_error callback failed")

    def _after_fork_in_child(self) -> None:
        self._sender.forget_after_fork()
        self._queue.after_fork_in_child()
        self._counts_lock = threading.Lock()
        self._sent = self._failed = 0


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return True


# Every client alive in this process, for the exit flush and the fork hook; weak, so that a
# client nobody holds can still be collected.
_live_clients: weakref.WeakSet[EyeClient] = weakref.WeakSet()


def _flush_at_exit() -> None:
    for client in list(_live_clients):
        try:
            if not client.shutdown(client.exit_timeout):
                log.error("The Eye client exits with %d events unsent", client.stats().pending)
        except Exception:
            log.exception("flushing The Eye client at exit failed")


def _after_fork_in_child() -> None:
    for client in list(_live_clients):
        client._after_fork_in_child()


atexit.register(_flush_at_exit)
if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)
