"""Schema dry runs: how a schema for an event type would judge that type's newest events and
errors, before it is put in force. A dry run stores nothing and changes nothing.

The candidate is compiled exactly as registering it would (`check_schema`: an unusable one
raises `SchemaInvalid`), then the checks of processing run with it as the type's version in
force (an `EventChecker` with the settings' limits and a `CandidateSchema`), over:

- the newest `limit` stored events of the type (by timestamp, through the same indexed
  query as `GET /events/?category=&name=`), each as the raw event it stands for, judged
  against the time The Eye first received it, as an edit is;
- the newest `limit` open errors of the type (not replayed; by the category and name kept
  from their raw event, through the same indexed query as `GET /errors/`), judged as a
  replay judges them: one that would pass is one a replay under the candidate would store.
  Errors whose kept payload was cut short cannot be read back and are left out, as replay
  skips them.

The work is bounded by `limit` (at most `MAX_LIMIT`); up to `MAX_EXAMPLES` failures of each
kind are kept, newest first, with the reason, the JSON path at fault and the message a real
error record would carry.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection, Engine

from the_eye.config import Settings
from the_eye.processor.checker import EventChecker
from the_eye.processor.checks import EventRejected, Limits
from the_eye.processor.schemas import CandidateSchema, CompiledSchema, check_schema
from the_eye.services.corrections import stored_raw
from the_eye.services.replay import sort_out
from the_eye.store import queries
from the_eye.store import schemas as schema_store
from the_eye.store.tables import AnyRow, errors

__all__ = ["MAX_LIMIT", "DryRunReport", "Failure", "Tally", "dry_run"]

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
MAX_EXAMPLES = 10


@dataclass(slots=True, frozen=True)
class Failure:
    """One event or error the candidate would refuse: its id, and why."""

    id: int
    reason: str
    path: str | None
    message: str


@dataclass(slots=True)
class Tally:
    """How many were checked, would pass and would fail, with the first failures."""

    checked: int = 0
    would_pass: int = 0
    would_fail: int = 0
    examples: list[Failure] = field(default_factory=list)

    def passed(self) -> None:
        self.checked += 1
        self.would_pass += 1

    def failed(self, row_id: int, reason: str, message: str, details: Any) -> None:
        self.checked += 1
        self.would_fail += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(Failure(row_id, reason, path_of(details), message))


@dataclass(slots=True)
class DryRunReport:
    """What a candidate schema would do to the newest events and errors of its type. Its
    fields, nested, are the answer of `POST /schemas/dry-run/` (`bodies.SchemaDryRun`)."""

    category: str
    name: str
    version: int  # the version it would get, were it registered now
    limit: int
    events: Tally
    errors: Tally


def path_of(details: Any) -> str | None:
    """The JSON path at fault that an error's `details` name: the place a schema rule
    failed, else the field (`$.timestamp`), else None."""
    if not isinstance(details, dict):
        return None
    if isinstance(details.get("path"), str):
        return str(details["path"])
    if isinstance(details.get("field"), str):
        return f"$.{details['field']}"
    return None


def dry_run(
    engine: Engine,
    settings: Settings,
    category: str,
    name: str,
    schema: Any,
    limit: int = DEFAULT_LIMIT,
) -> DryRunReport:
    """Check `schema` as the next version of (category, name) against the type's newest
    `limit` events and errors. Raises SchemaInvalid, as registering it would."""
    validator = check_schema(category, name, schema)
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be 1 to {MAX_LIMIT}")
    with engine.connect() as conn:
        newest = schema_store.newest_version(conn, category, name)
        version = 1 if newest is None else newest.version + 1
        candidate = CandidateSchema(
            category,
            name,
            CompiledSchema(0, version, validator),
            settings.schema_check_budget_ms / 1000,
        )
        checker = EventChecker(Limits.of(settings), candidate)
        report = DryRunReport(category, name, version, limit, Tally(), Tally())
        _judge_events(_newest_events(conn, category, name, limit), checker, report.events)
        _judge_errors(_newest_errors(conn, category, name, limit), checker, report.errors)
    return report


def _newest_events(conn: Connection, category: str, name: str, limit: int) -> Iterable[AnyRow]:
    stmt = queries.select_events(category=category, name=name)
    rows, _ = queries.page(conn, stmt, queries.EVENTS_NEWEST_FIRST, None, limit)
    return rows


def _judge_events(rows: Iterable[AnyRow], checker: EventChecker, tally: Tally) -> None:
    for row in rows:
        outcome = checker.check(stored_raw(row), row.event_id, row.received_at, row.application_id)
        if isinstance(outcome, EventRejected):
            tally.failed(row.id, outcome.reason, outcome.message, outcome.details)
        else:
            tally.passed()


def _newest_errors(conn: Connection, category: str, name: str, limit: int) -> Sequence[AnyRow]:
    """The newest `limit` open errors of (category, name), with their payloads, through the
    same indexed query as `GET /errors/?category=&name=&replayed=false`."""
    where = queries.ErrorFilter(replayed=False, category=category, name=name)
    stmt = queries.select_errors(where).add_columns(errors.c.payload)
    rows, _ = queries.page(conn, stmt, queries.ERRORS_NEWEST_FIRST, None, limit)
    return rows


def _judge_errors(rows: Sequence[AnyRow], checker: EventChecker, tally: Tally) -> None:
    passed, failing, _ = sort_out(rows, checker)  # unreadable payloads are left out
    outcomes = {error.id: new for error, new in failing}
    passing = {error.id for error, _ in passed}
    for row in rows:  # newest first, so that the examples are the newest failures
        if row.id in passing:
            tally.passed()
        elif row.id in outcomes:
            new = outcomes[row.id]
            tally.failed(row.id, new["reason"], new["message"], new["details"])
