"""The bounded in-memory queue of events and the background thread that sends it in batches."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from time import monotonic

log = logging.getLogger(__name__)

# Sends one batch; never raises. Its second argument waits before a retry (see `Pause`).
Deliver = Callable[[list[bytes], Callable[[float], bool]], None]


class BatchingQueue:
    """Holds encoded events until a batch is full, the oldest has waited `flush_interval`, or
    someone flushes; one daemon thread sends them, in the order tracked.

    Full, it drops new events and counts them, rather than growing without end while The
    Eye is unreachable.
    """

    def __init__(
        self,
        deliver: Deliver,
        *,
        batch_size: int = 100,
        flush_interval: float = 0.5,
        max_queue_size: int = 10_000,
        max_batch_bytes: int = 1024 * 1024,
    ) -> None:
        if batch_size < 1 or max_queue_size < 1:
            raise ValueError("batch_size and max_queue_size must be at least 1")
        self._deliver = deliver
        self.batch_size, self.flush_interval = batch_size, flush_interval
        self.max_queue_size, self.max_batch_bytes = max_queue_size, max_batch_bytes
        self.dropped = 0
        self._closed = False
        self._start_afresh()

    def _start_afresh(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._events: deque[tuple[bytes, float]] = deque()  # (event, when it was queued)
        self._thread: threading.Thread | None = None
        self._queued = 0  # events ever queued
        self._settled = 0  # of those, events sent or given up on
        self._flush_to = 0  # send without waiting until `_settled` reaches this
        self._deadline: float | None = None  # past it, retries give up (shutting down)
        self._warned_full = False

    def after_fork_in_child(self) -> None:
        """Start empty: the parent sends what it queued, and its thread and locks are not ours."""
        self._start_afresh()
        self.dropped = 0

    @property
    def pending(self) -> int:
        """Events queued or being sent."""
        return self._queued - self._settled

    def put(self, event: bytes) -> bool:
        """Queue one encoded event; False when it was dropped."""
        with self._lock:
            if self._closed or len(self._events) >= self.max_queue_size:
                self.dropped += 1
                if not self._warned_full:
                    self._warned_full = True
                    log.warning(
                        "The Eye client %s; dropping events",
                        "is shut down" if self._closed else "queue is full",
                    )
                return False
            self._warned_full = False
            self._events.append((event, monotonic()))
            self._queued += 1
            if self._thread is None:
                self._start_thread()
            # Wake the thread only when it has something new to decide: a first event to
            # time, or a full batch.
            if len(self._events) == 1 or len(self._events) == self.batch_size:
                self._changed.notify()
            return True

    def _start_thread(self) -> None:
        thread = threading.Thread(target=self._run, name="the-eye-client", daemon=True)
        try:
            thread.start()
        except RuntimeError:
            # At interpreter exit no thread can start; the exit flush sends on its own thread.
            return
        self._thread = thread

    def _run(self) -> None:
        while True:
            with self._lock:
                batch = self._next_batch()
            if batch is None:
                return
            self._send(batch)

    def _send(self, batch: list[bytes]) -> None:
        try:
            self._deliver(batch, self._pause)
        finally:
            with self._lock:
                self._settled += len(batch)
                self._changed.notify_all()

    def _next_batch(self) -> list[bytes] | None:
        """Wait for a batch to be due and take it; None once closed and empty. Lock held."""
        while True:
            if not self._events:
                if self._closed:
                    return None
                self._changed.wait()
                continue
            now = monotonic()
            due = self._events[0][1] + self.flush_interval
            if (
                len(self._events) >= self.batch_size
                or self._closed
                or self._flush_to > self._settled
                or now >= due
            ):
                return self._take()
            self._changed.wait(due - now)

    def _take(self) -> list[bytes]:
        batch: list[bytes] = []
        size = 0
        while self._events and len(batch) < self.batch_size:
            event = self._events[0][0]
            if batch and size + len(event) > self.max_batch_bytes:
                break
            self._events.popleft()
            batch.append(event)
            size += len(event) + 1
        return batch

    def _pause(self, seconds: float) -> bool:
        """Wait before a retry; False once the shutdown deadline has passed."""
        end = monotonic() + seconds
        with self._lock:
            while True:
                now = monotonic()
                if self._deadline is not None and now >= self._deadline:
                    return False
                if now >= end:
                    return True
                wake = end if self._deadline is None else min(end, self._deadline)
                self._changed.wait(wake - now)

    def _drain_here(self) -> None:
        """Send what is queued on the calling thread, when no sending thread runs."""
        while True:
            with self._lock:
                if not self._events:
                    return
                batch = self._take()
            self._send(batch)

    def _sending_thread_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything queued so far now; True once it is sent or given up on."""
        if threading.current_thread() is self._thread:
            return False  # called from an on_error callback: waiting here would never end
        with self._lock:
            target = self._queued
            self._flush_to = max(self._flush_to, target)
            self._changed.notify_all()
            alive = self._sending_thread_alive()
        if not alive:
            self._drain_here()
        return self._wait_settled(target, timeout)

    def _wait_settled(self, target: int, timeout: float | None) -> bool:
        end = None if timeout is None else monotonic() + timeout
        with self._lock:
            while self._settled < target:
                remaining = None if end is None else end - monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def close(self, timeout: float | None = None) -> bool:
        """Send what is queued, then stop; retries give up after `timeout` seconds.

        True when everything queued was sent or given up on in time.
        """
        with self._lock:
            self._closed = True
            if timeout is not None:
                self._deadline = monotonic() + timeout
            target = self._queued
            self._changed.notify_all()
            thread = self._thread
        if thread is threading.current_thread():
            return False
        if thread is None or not thread.is_alive():
            self._drain_here()
        else:
            thread.join(timeout)
        with self._lock:
            return self._settled >= target
