"""Error replay: run kept raw events through the checks again, with the rules in force now.

An error that passes becomes an event (once, whatever the number of replays) and is
marked replayed with a link to it; one that fails again keeps its record with the new
reason. Whole-body errors (`invalid_json`, `processing_failed`) hold no single event and
are skipped. Bulk replay walks the matching errors by id in batches, each in its own
short transaction, so memory and lock times stay bounded whatever their number.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy.engine import Engine

from the_eye.processor.checks import Limits, SchemaCheck, ValidEvent, check_event
from the_eye.store.engine import write_transaction
from the_eye.store.replay import (
    ErrorFilter,
    count_errors,
    lock_error,
    lock_errors,
    store_replayed,
    store_still_failing,
)

__all__ = ["ErrorFilter", "ReplayCounts", "ReplayOutcome", "replay_error", "replay_errors"]

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


def _replayable(error: Any) -> bool:
    return error.event_id is not None and error.application_id is not None


def sort_out(
    rows: list[Any], limits: Limits, schema_check: SchemaCheck | None
) -> tuple[list[tuple[Any, dict]], list[tuple[Any, dict]], list[Any]]:
    """Check each error's raw event again: (passed with event rows, failing with new reasons,
    skipped). Pure: no I/O."""
    passed, failing, skipped = [], [], []
    for error in rows:
        if error.replayed or not _replayable(error):
            skipped.append(error)
            continue
        try:
            raw = _decode(error.payload)
        except msgspec.DecodeError:
            skipped.append(error)
            continue
        outcome = check_event(
            raw, error.event_id, error.received_at, limits, schema_check, error.application_id
        )
        if isinstance(outcome, ValidEvent):
            passed.append(
                (
                    error,
                    {
                        "application_id": error.application_id,
                        "event_id": outcome.event_id,
                        "session_id": outcome.session_id,
                        "category": outcome.category,
                        "name": outcome.name,
                        "data": outcome.data,
                        "timestamp": outcome.timestamp,
                        "received_at": error.received_at,
                    },
                )
            )
        else:
            new = {"reason": outcome.reason, "message": outcome.message, "details": outcome.details}
            failing.append((error, new))
    return passed, failing, skipped


def replay_errors(
    engine: Engine,
    where: ErrorFilter,
    *,
    limits: Limits,
    schema_check: SchemaCheck | None,
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[ReplayCounts], None] | None = None,
    refresh: Callable[[], None] | None = None,
) -> ReplayCounts:
    """Replay every error `where` matches, `batch_size` at a time; call `progress` after each
    batch and `refresh` (to pick up new schema versions) before each."""
    counts = ReplayCounts()
    after = 0
    while True:
        if refresh is not None:
            refresh()
        with write_transaction(engine) as conn:
            rows = lock_errors(conn, where, after, batch_size)
            if not rows:
                return counts
            after = rows[-1].id
            passed, failing, skipped = sort_out(rows, limits, schema_check)
            store_replayed(conn, passed)
            store_still_failing(conn, failing)
        counts.replayed += len(passed)
        counts.still_failing += len(failing)
        counts.skipped += len(skipped)
        if progress is not None:
            progress(counts)


def count_matching(engine: Engine, where: ErrorFilter) -> int:
    """How many errors a bulk replay with this filter would go through."""
    with engine.connect() as conn:
        return count_errors(conn, where)


class ErrorNotFound(LookupError):
    """No error has that id."""


def replay_error(
    engine: Engine, error_id: int, *, limits: Limits, schema_check: SchemaCheck | None
) -> ReplayOutcome:
    """Replay one error."""
    with write_transaction(engine) as conn:
        error = lock_error(conn, error_id)
        if error is None:
            raise ErrorNotFound(error_id)
        if error.replayed:
            return ReplayOutcome("already_replayed", error.replayed_event_id)
        if not _replayable(error):
            return ReplayOutcome("not_replayable")
        passed, failing, _ = sort_out([error], limits, schema_check)
        if passed:
            links = store_replayed(conn, passed)
            return ReplayOutcome("replayed", links[error.id])
        if failing:
            store_still_failing(conn, failing)
            return ReplayOutcome("still_failing")
        return ReplayOutcome("not_replayable")
