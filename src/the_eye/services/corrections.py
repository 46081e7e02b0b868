"""Corrections of stored events: an edit passes the same checks as a new event; a whole
session can be erased.

The changed event is checked by the process's `EventChecker` against the time The Eye
first received it, with the rules in force now (the checker is refreshed at once); then the
store changes it and recounts the sessions it left and joined, all in one transaction.
PostgreSQL deadlocks with concurrent writers are retried; nothing is written on any error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from the_eye.processor.checker import EventChecker
from the_eye.processor.checks import EventRejected, ValidEvent
from the_eye.store.corrections import EventIdTaken, change_event, lock_event, remove_event
from the_eye.store.engine import write_transaction
from the_eye.store.sessions import delete_session
from the_eye.store.tables import AnyRow
from the_eye.timestamps import format_timestamp, utcnow

__all__ = [
    "EditInvalid",
    "EditRejected",
    "EventIdTaken",
    "EventNotFound",
    "SessionNotFound",
    "delete_event",
    "edit_event",
    "erase_session",
    "stored_raw",
]

EDITABLE = frozenset({"session_id", "session", "category", "name", "data", "timestamp", "event_id"})
# Fields of an event as the API shows it that an edit cannot change; sending them back
# unchanged (a GET, modified, then PUT) is allowed, and they are ignored.
READ_ONLY = frozenset({"id", "application", "received_at"})

T = TypeVar("T")


class EventNotFound(LookupError):
    """No event has that id."""


class SessionNotFound(LookupError):
    """No session has that id (or it was erased already)."""


class EditInvalid(ValueError):
    """The edit itself is malformed: not an object, or fields an event does not have."""


class EditRejected(ValueError):
    """The edited event fails a check; `rejected` says which, as an error record would."""

    def __init__(self, rejected: EventRejected) -> None:
        super().__init__(rejected.message)
        self.rejected = rejected


def stored_raw(event: AnyRow) -> dict[str, Any]:
    """The raw event a stored event stands for, as its sender would send it: what the checks
    run on when they judge a stored event again (an edit, a schema dry run)."""
    return {
        "session_id": event.session_id,
        "category": event.category,
        "name": event.name,
        "data": event.data,
        "timestamp": format_timestamp(event.timestamp),
        "event_id": event.event_id,
    }


def edited_raw(current: AnyRow, changes: Any, replace: bool) -> dict[str, Any]:
    """The raw event an edit makes: `changes` over the current event, or instead of it."""
    if not isinstance(changes, dict):
        raise EditInvalid("An edit must be a JSON object.")
    unknown = sorted(set(changes) - EDITABLE - READ_ONLY)
    if unknown:
        raise EditInvalid(f"Events have no field {', '.join(map(repr, unknown))}.")
    changes = {k: v for k, v in changes.items() if k in EDITABLE}
    if "session" in changes and "session_id" not in changes:
        session = changes.pop("session")
        changes["session_id"] = session.get("id") if isinstance(session, dict) else session
    changes.pop("session", None)
    raw = changes if replace else {**stored_raw(current), **changes}
    if raw.get("event_id") is None:
        raw["event_id"] = current.event_id
    return raw


def _retry_deadlocks(work: Callable[[], T], attempts: int = 5) -> T:
    """Run `work` again when PostgreSQL broke a deadlock by cancelling it."""
    for attempt in range(attempts):
        try:
            return work()
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != "40P01" or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def edit_event(
    engine: Engine,
    row_id: int,
    changes: Any,
    checker: EventChecker,
    *,
    replace: bool,
) -> AnyRow:
    """Change event `row_id` (PATCH merges `changes`, PUT with `replace` replaces the fields);
    return the stored row. Raises EventNotFound, EditInvalid, EditRejected or EventIdTaken,
    and then nothing is written."""
    checker.refresh(force=True)

    def work() -> AnyRow:
        with write_transaction(engine) as conn:
            current = lock_event(conn, row_id)
            if current is None:
                raise EventNotFound(row_id)
            raw = edited_raw(current, changes, replace)
            outcome = checker.check(
                raw,
                raw["event_id"] if isinstance(raw["event_id"], str) else current.event_id,
                current.received_at,
                current.application_id,
            )
            if not isinstance(outcome, ValidEvent):
                raise EditRejected(outcome)
            return change_event(conn, current, outcome.row(), utcnow())

    return _retry_deadlocks(work)


def delete_event(engine: Engine, row_id: int) -> None:
    """Delete event `row_id`, keeping its session's counters and the stats right."""

    def work() -> None:
        with write_transaction(engine) as conn:
            if remove_event(conn, row_id) is None:
                raise EventNotFound(row_id)

    _retry_deadlocks(work)


def erase_session(engine: Engine, session_id: str) -> None:
    """Erase session `session_id` and every event of it, keeping the stats right; raises
    SessionNotFound when there is no such session."""
    with write_transaction(engine) as conn:
        if not delete_session(conn, session_id):
            raise SessionNotFound(session_id)
