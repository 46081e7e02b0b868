"""Error replay: run kept raw events through the checks again, with the rules in force now.

An error that passes becomes an event (once, whatever the number of replays) and is
marked replayed with a link to it; one that fails again keeps its record with the new
reason. Whole-body errors (`invalid_json`, `processing_failed`) hold no single event and
are skipped. Bulk replay walks the matching errors by id in batches, each in its own
short transaction, so memory and lock times stay bounded whatever their number.

A replay checks with the rules in force when it starts (the checker is refreshed at once),
and picks up newer ones between batches. `start_replay_job` runs a bulk replay in a thread
and records its progress in the store after each batch (see `store.replay_jobs`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy.engine import Engine

from the_eye.processor.checker import EventChecker
from the_eye.processor.checks import ValidEvent
from the_eye.store.engine import write_transaction
from the_eye.store.queries import ErrorFilter, count_errors
from the_eye.store.replay import lock_error, lock_errors, store_replayed, store_still_failing
from the_eye.store.replay_jobs import create_job, record_progress
from the_eye.store.tables import AnyRow
from the_eye.timestamps import utcnow

__all__ = [
    "ErrorNotFound",
    "ReplayCounts",
    "ReplayOutcome",
    "replay_error",
    "replay_errors",
    "start_replay_job",
]

log = logging.getLogger(__name__)

DEFAULT_BATCH = 500

_decode = msgspec.json.decode


@dataclass(slots=True)
class ReplayCounts:
    """How a bulk replay went, so far or in the end."""

    replayed: int = 0
    still_failing: int = 0
    skipped: int = 0

    @property
    def done(self) -> int:
        return self.replayed + self.still_failing + self.skipped


@dataclass(slots=True)
class ReplayOutcome:
    """What replaying one error did: `replayed`, `still_failing`, `already_replayed` or
    `not_replayable`."""

    outcome: str
    event_row_id: int | None = None


def _replayable(error: AnyRow) -> bool:
    return error.event_id is not None and error.application_id is not None


def sort_out(
    rows: Sequence[AnyRow], checker: EventChecker
) -> tuple[list[tuple[AnyRow, dict[str, Any]]], list[tuple[AnyRow, dict[str, Any]]], list[AnyRow]]:
    """Check each error's raw event again: (passed with event rows, failing with new reasons,
    skipped). Pure: no I/O."""
    passed: list[tuple[AnyRow, dict[str, Any]]] = []
    failing: list[tuple[AnyRow, dict[str, Any]]] = []
    skipped: list[AnyRow] = []
    for error in rows:
        if error.replayed or not _replayable(error):
            skipped.append(error)
            continue
        try:
            raw = _decode(error.payload)
        except msgspec.DecodeError:
            skipped.append(error)
            continue
        outcome = checker.check(raw, error.event_id, error.received_at, error.application_id)
        if isinstance(outcome, ValidEvent):
            passed.append((error, outcome.row()))
        else:
            failing.append((error, outcome.record()))
    return passed, failing, skipped


def replay_errors(
    engine: Engine,
    where: ErrorFilter,
    checker: EventChecker,
    *,
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[ReplayCounts], None] | None = None,
) -> ReplayCounts:
    """Replay every error `where` matches, `batch_size` at a time, and call `progress` after
    each batch."""
    checker.refresh(force=True)
    counts = ReplayCounts()
    after = 0
    while True:
        with write_transaction(engine) as conn:
            rows = lock_errors(conn, where, after, batch_size)
            if not rows:
                return counts
            after = rows[-1].id
            passed, failing, skipped = sort_out(rows, checker)
            store_replayed(conn, passed)
            store_still_failing(conn, failing)
        counts.replayed += len(passed)
        counts.still_failing += len(failing)
        counts.skipped += len(skipped)
        if progress is not None:
            progress(counts)
        checker.refresh()  # new schema versions apply from the next batch on


class ErrorNotFound(LookupError):
    """No error has that id."""


def replay_error(engine: Engine, error_id: int, checker: EventChecker) -> ReplayOutcome:
    """Replay one error; raises ErrorNotFound when no error has that id."""
    checker.refresh(force=True)
    with write_transaction(engine) as conn:
        error = lock_error(conn, error_id)
        if error is None:
            raise ErrorNotFound(error_id)
        if error.replayed:
            return ReplayOutcome("already_replayed", error.replayed_event_id)
        if not _replayable(error):
            return ReplayOutcome("not_replayable")
        passed, failing, _ = sort_out([error], checker)
        if passed:
            links = store_replayed(conn, passed)
            return ReplayOutcome("replayed", links[error.id])
        if failing:
            store_still_failing(conn, failing)
            return ReplayOutcome("still_failing")
        return ReplayOutcome("not_replayable")


def start_replay_job(
    engine: Engine,
    where: ErrorFilter,
    checker: EventChecker,
    filters: dict[str, str],
    started_by: str,
    *,
    batch_size: int = DEFAULT_BATCH,
) -> str:
    """Replay every error `where` matches in a background thread, as `replay_errors` does,
    and return the job's id; its progress is read with `store.replay_jobs.get_job`.
    `filters` (the filters as the person gave them) and `started_by` are kept for display."""
    with write_transaction(engine) as conn:
        job_id = create_job(conn, filters, started_by)
    thread = threading.Thread(
        target=_run_job,
        args=(engine, job_id, where, checker, batch_size),
        name=f"replay-{job_id}",
        daemon=True,
    )
    thread.start()
    return job_id


def _run_job(
    engine: Engine, job_id: str, where: ErrorFilter, checker: EventChecker, batch_size: int
) -> None:
    def record(**values: Any) -> None:
        with write_transaction(engine) as conn:
            record_progress(conn, job_id, **values)

    def progress(counts: ReplayCounts) -> None:
        record(replayed=counts.replayed, still_failing=counts.still_failing, skipped=counts.skipped)

    try:
        with engine.connect() as conn:
            total = count_errors(conn, where)
        record(total=total)
        progress(replay_errors(engine, where, checker, batch_size=batch_size, progress=progress))
        record(finished_at=utcnow())
    except Exception as exc:
        # A thread's exception would reach no one: the job's page says it stopped, and why.
        log.exception("replay job %s failed", job_id)
        record(finished_at=utcnow(), failure=f"The replay stopped: {type(exc).__name__}.")
