"""Keeps the processor processes of `the-eye serve` running.

A thread of the serving process watches its processor children; one that exits (killed for
memory, SIGKILL, a crash) is logged and started again after a backoff: 1 s, doubling up to
30 s while restarts keep failing, back to 1 s once a processor has lived a minute; a start
that fails (no memory, no file descriptors) is logged and tried again after the same
backoff. Nothing is started once `stop` begins: it ends the watch first, then sends SIGTERM
(each processor finishes its batch) and waits.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any

log = logging.getLogger(__name__)

_WATCH_EVERY = 0.2  # seconds between looks at the children


@dataclass(slots=True)
class _Slot:
    """One processor the supervisor keeps running."""

    backoff: float
    process: BaseProcess | None = None
    started: float = 0.0
    restart_at: float = 0.0


class Supervisor:
    """Runs `count` processes of `target(*args)` and restarts each one that dies."""

    def __init__(
        self,
        target: Callable[..., Any],
        args: tuple[Any, ...],
        count: int,
        *,
        initializer: Callable[[], None] | None = None,
        first_backoff: float = 1.0,
        max_backoff: float = 30.0,
        healthy_after: float = 60.0,
        start_process: Callable[[BaseProcess], None] = BaseProcess.start,
    ) -> None:
        self._target, self._args, self._initializer = target, args, initializer
        self._first, self._max, self._healthy = first_backoff, max_backoff, healthy_after
        self._start_process = start_process
        self._context = multiprocessing.get_context("spawn")
        self._slots = [_Slot(first_backoff) for _ in range(count)]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="processor-supervisor")
        self.restarts = 0

    def start(self) -> None:
        for slot in self._slots:
            self._spawn(slot)
        if self._slots:
            self._thread.start()

    def pids(self) -> list[int | None]:
        """The running processors' process ids (None for one waiting to restart)."""
        return [slot.process.pid if slot.process else None for slot in self._slots]

    def _spawn(self, slot: _Slot) -> BaseProcess:
        process = self._context.Process(
            target=_child, args=(self._initializer, self._target, self._args), daemon=False
        )
        self._start_process(process)
        slot.process, slot.started = process, time.monotonic()
        return process

    def _watch(self) -> None:
        while not self._stopping.wait(_WATCH_EVERY):
            now = time.monotonic()
            for slot in self._slots:
                if slot.process is not None and not slot.process.is_alive():
                    self._buried(slot, now)
                if slot.process is None and now >= slot.restart_at:
                    self._restart(slot, now)

    def _restart(self, slot: _Slot, now: float) -> None:
        if self._stopping.is_set():
            return
        try:
            pid = self._spawn(slot).pid
        except Exception:
            log.exception("a processor could not be started; trying again in %.0f s", slot.backoff)
            slot.restart_at = now + slot.backoff
            slot.backoff = min(slot.backoff * 2, self._max)
            return
        self.restarts += 1
        log.warning("processor restarted (pid %s)", pid)

    def _buried(self, slot: _Slot, now: float) -> None:
        """Note a dead processor and when to start it again."""
        assert slot.process is not None
        slot.process.join()
        lived = now - slot.started
        if lived >= self._healthy:
            slot.backoff = self._first
        log.error(
            "processor (pid %s) exited with code %s after %.1f s; restarting in %.0f s",
            slot.process.pid,
            slot.process.exitcode,
            lived,
            slot.backoff,
        )
        slot.process, slot.restart_at = None, now + slot.backoff
        slot.backoff = min(slot.backoff * 2, self._max)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop restarting, then SIGTERM every processor and wait for it."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        running = [slot.process for slot in self._slots if slot.process is not None]
        for process in running:
            process.terminate()  # SIGTERM: the processor finishes its batch, then exits
        for process in running:
            process.join(timeout)


def _child(
    initializer: Callable[[], None] | None, target: Callable[..., Any], args: tuple[Any, ...]
) -> None:
    """A spawned processor starts from a fresh interpreter: set it up (logging), then run."""
    if initializer is not None:
        initializer()
    target(*args)
