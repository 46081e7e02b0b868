"""The processor loop: take a batch from the queue, check it, store it, acknowledge it.

Between batches, and every `heartbeat_seconds` even when idle, the processor records that it
is alive (`the_eye.store.liveness`); a processor that dies or hangs stops beating.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from the_eye.config import Settings
from the_eye.processor.batch import BatchRows, MessageBounds, body_error, process_messages
from the_eye.processor.checker import EventChecker
from the_eye.queue import Delivery, Message, Queue, QueueUnavailable, open_queue
from the_eye.runtime import freeze_startup_objects
from the_eye.store import liveness
from the_eye.store.engine import create_engine
from the_eye.store.writes import WriteResult, bump_counters, store_errors, store_events
from the_eye.timestamps import utcnow

log = logging.getLogger(__name__)

TRANSIENT = (OperationalError,)
# What a processor waits out: the store or the queue cannot be reached.
UNAVAILABLE = (DBAPIError, QueueUnavailable, ConnectionError, OSError)
MAX_BACKOFF = 5.0

# Bodies held in memory by one batch, at most about (a single request may exceed it).
BATCH_BYTES = 64 * 1024 * 1024


@dataclass
class Processor:
    """Drains a queue into the store, batch by batch."""

    engine: Engine
    queue: Queue
    checker: EventChecker
    batch_size: int = 2000
    batch_events: int = 10000
    bounds: MessageBounds = field(default_factory=MessageBounds)
    heartbeat_seconds: float = 5.0
    name: str = field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
    )
    started_at: datetime = field(default_factory=utcnow)
    _next_beat: float = 0.0
    # Sizes of recent messages; the first batch takes one message, as nothing is known yet.
    _events_per_message: float = float("inf")
    _bytes_per_message: float = float("inf")

    @classmethod
    def from_settings(cls, settings: Settings) -> Processor:
        # The processor writes to every index of `events`; cached, their pages are not read
        # again from the file at each insert (a fifth of its CPU on a store of millions).
        engine = create_engine(settings, cache_mb=settings.sqlite_processor_cache_mb)
        return cls(
            engine=engine,
            queue=open_queue(settings, engine),
            checker=EventChecker.from_settings(settings, engine),
            batch_size=settings.batch_size,
            batch_events=settings.batch_events,
            bounds=MessageBounds(settings.max_events_per_request, settings.max_deliveries),
            heartbeat_seconds=settings.heartbeat_seconds,
        )

    def beat(self, force: bool = False) -> None:
        """Record that this processor is alive, at most every `heartbeat_seconds`."""
        now = time.monotonic()
        if not force and now < self._next_beat:
            return
        with self.engine.begin() as conn:
            if not self._next_beat:  # the first beat: drop processors long gone
                liveness.forget(conn, now=utcnow())
            liveness.beat(conn, self.name, self.started_at, utcnow())
        self._next_beat = now + self.heartbeat_seconds

    def _forget(self) -> None:
        try:
            with self.engine.begin() as conn:
                liveness.forget(conn, self.name, utcnow())
        except Exception as exc:
            log.warning("could not remove this processor's heartbeat (%s)", type(exc).__name__)

    def run_once(self, limit: int | None = None) -> int:
        """Process one batch; return how many messages it took (0 when idle)."""
        self.checker.refresh()  # a no-op until the refresh interval has passed
        with self.queue.consume(limit or self._next_limit(), self._prepare) as delivery:
            if not delivery.messages:
                return 0
            self._record(delivery)
            taken = len(delivery.messages)
            self._events_per_message = sum(len(m.event_ids) or 1 for m in delivery.messages) / taken
            self._bytes_per_message = sum(len(m.body) or 1 for m in delivery.messages) / taken
            return len(delivery.messages)

    def _next_limit(self) -> int:
        """Messages to take so that a batch holds about `batch_events` events: a transaction
        of a few thousand events keeps the store's lock short for ingest, whatever the
        requests' sizes."""
        wanted = min(
            self.batch_events / self._events_per_message,
            BATCH_BYTES / self._bytes_per_message,
        )
        return max(1, min(self.batch_size, int(wanted)))

    def _prepare(self, messages: list[Message]) -> BatchRows | None:
        try:
            return process_messages(messages, self.checker, self.bounds)
        except Exception:
            log.exception("checking a batch failed; isolating its messages")
            return None

    def _record(self, delivery: Delivery) -> None:
        conn = delivery.connection
        try:
            if delivery.prepared is None:
                raise RuntimeError("the batch could not be checked as a whole")
            with conn.begin_nested():
                write(conn, delivery.prepared)
        except TRANSIENT:
            raise
        except Exception:
            # One message breaks the batch: store the others, and keep the culprit as an error
            # so that it cannot block the queue.
            log.exception("batch failed; isolating its messages one by one")
            for message in delivery.messages:
                try:
                    rows = self._prepare([message])
                    if rows is None:
                        raise RuntimeError("the request could not be checked")
                    with conn.begin_nested():
                        write(conn, rows)
                except TRANSIENT:
                    raise
                except Exception as exc:
                    log.exception("message %s could not be processed", message.queue_id)
                    self._keep_as_failed(conn, message, exc)

    def _keep_as_failed(self, conn: Connection, message: Message, exc: Exception) -> None:
        """Keep a request that cannot be processed as one error record with its body; if
        even that cannot be written, a record without the body, so the queue moves on."""
        events = len(message.event_ids)
        failed = body_error(
            message,
            _failure(exc),
            "processing_failed",
            self.checker.limits.max_error_payload_bytes,
            {"events": events},
        )
        try:
            with conn.begin_nested():
                write(conn, BatchRows(bodies=[(failed, events)]))
        except TRANSIENT:
            raise
        except Exception:
            log.exception("message %s kept without its body", message.queue_id)
            failed["payload"] = ""
            with conn.begin_nested():
                write(conn, BatchRows(bodies=[(failed, events)]))

    def drain(self) -> int:
        """Process until the queue is empty; return the messages processed."""
        total = 0
        while n := self.run_once():
            total += n
        return total

    def run(
        self, stop: threading.Event, poll_interval: float = 0.02, parent_pid: int | None = None
    ) -> None:
        """Run until `stop` is set or the parent is gone; back off while the store or the
        queue is down, and resume by itself. `stop` is checked between batches only, so the
        batch in hand is always finished (or rolled back whole)."""
        backoff = poll_interval
        failing = False
        while not stop.is_set():
            if parent_pid is not None and os.getppid() != parent_pid:
                log.warning("parent process gone; processor stopping")
                return
            try:
                self.beat()
                # An empty batch while messages wait means other processors hold them all
                # (locked rows, pending entries): wait as when idle rather than spin.
                if not (self.queue.has_messages() and self.run_once()):
                    stop.wait(poll_interval)
            except UNAVAILABLE as exc:
                log.warning(
                    "store or queue unavailable (%s); retrying in %.2fs", _outage(exc), backoff
                )
            except Exception:
                # Not a known outage, but a processor that stops would leave the queue to grow:
                # keep trying, slowly, and say why.
                log.exception("processing failed; retrying in %.1fs", backoff)
            else:
                if failing:
                    log.info("store and queue reachable again; processing resumed")
                    failing, backoff = False, poll_interval
                continue
            failing = True
            # Jitter keeps a fleet of processors from hammering a recovering service in step.
            stop.wait(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, MAX_BACKOFF)

    def close(self) -> None:
        self._forget()
        self.queue.close()
        self.engine.dispose()


def write(conn: Connection, rows: BatchRows) -> WriteResult:
    """Store a batch's rows and count each accepted event once: stored, errored, or a
    duplicate (an event or an invalid event whose key is already kept, or a message
    delivered again)."""
    stored = store_events(conn, rows.events)
    errored = store_errors(conn, rows.errors)
    result = WriteResult(
        stored=stored,
        duplicates=len(rows.events) - stored + len(rows.errors) - errored,
        errored=errored,
    )
    for row, events in rows.bodies:  # rare: one statement each, to know which were new
        if not store_errors(conn, [row]):
            result.duplicates += events
        elif events:
            result.errored += events
        else:
            result.rejected += 1
    bump_counters(conn, result)
    return result


def _outage(exc: Exception) -> str:
    """The driver's first line, without the statement and parameters SQLAlchemy appends."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"


def _failure(exc: Exception) -> str:
    return f"The processor could not handle this request ({type(exc).__name__})."


def run_worker(settings: Settings, parent_pid: int | None = None) -> None:
    """Entry point of a processor process: runs until SIGTERM or SIGINT, finishing its batch.

    A processor with a parent (`the-eye serve`) ignores SIGINT: a Ctrl-C reaches the whole
    process group, and the parent stops its processors with SIGTERM once it stops restarting
    them, and runs at `serve_processor_nice`."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if parent_pid is None:
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    else:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # Beside the API on its cores: a request waiting behind a batch is a slow answer,
        # a batch waiting behind requests only a little more lag.
        os.nice(settings.serve_processor_nice)
    processor = Processor.from_settings(settings)
    freeze_startup_objects()
    log.info("processor started (pid %s, %s)", os.getpid(), type(processor.queue).__name__)
    try:
        processor.run(stop, settings.poll_interval, parent_pid)
    finally:
        processor.close()
        log.info("processor stopped (pid %s)", os.getpid())
