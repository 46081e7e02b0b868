"""The per-minute rollups behind /stats/: kept by every write, summed per bucket when asked.

Every statement that adds, changes or removes an event or an open error also adds its
signed count to the minute it falls in, in the same transaction, with one set-based upsert
(`count = count + excluded.count`). A query then sums at most one row per minute and type,
whatever the number of events. Only the partial minutes at the ends of a range are counted
from the events and errors themselves, so answers are exact for any range.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from the_eye.store.tables import error_counts, errors, event_counts, events

EPOCH = datetime(1970, 1, 1)
ONE_MINUTE = timedelta(minutes=1)
BUCKET_MINUTES = {"minute": 1, "hour": 60, "day": 1440}

_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def minute_of(moment: datetime) -> int:
    """Whole minutes since 1970 of a naive UTC datetime, rounded down."""
    return (moment - EPOCH) // ONE_MINUTE


def start_of(minute: int) -> datetime:
    return EPOCH + minute * ONE_MINUTE


def _upsert(conn: Connection, table: sa.Table, keys: list[str], amounts: Counter) -> None:
    rows = [dict(zip(keys, key, strict=True), count=n) for key, n in sorted(amounts.items()) if n]
    if not rows:
        return
    stmt = _INSERTS[conn.dialect.name](table)
    # Sorted rows: concurrent writers take the row locks in one order and never deadlock.
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=keys, set_={"count": table.c.count + stmt.excluded.count}
        ),
        rows,
    )


_EVENT_KEYS = ["minute", "application_id", "category", "name"]
_ERROR_KEYS = ["minute", "application_id", "reason"]


def _tally_events(amounts: Counter, rows: Iterable[Any], sign: int) -> Counter:
    for row in rows:
        amounts[(minute_of(row.timestamp), row.application_id, row.category, row.name)] += sign
    return amounts


def count_events(conn: Connection, rows: Iterable[Any], sign: int = 1) -> None:
    """Add (or with sign -1 remove) events, given rows with application_id, category, name
    and timestamp, to their minutes."""
    _upsert(conn, event_counts, _EVENT_KEYS, _tally_events(Counter(), rows, sign))


def move_events(conn: Connection, removed: Iterable[Any], added: Iterable[Any]) -> None:
    """Count `removed` out and `added` in with one statement, so its row locks come in one
    order (two statements could deadlock with another edit moving the other way)."""
    amounts = _tally_events(_tally_events(Counter(), removed, -1), added, 1)
    _upsert(conn, event_counts, _EVENT_KEYS, amounts)


def _tally_errors(amounts: Counter, rows: Iterable[Any], sign: int) -> Counter:
    for row in rows:
        get = row.get if isinstance(row, dict) else row._mapping.get
        if get("replayed"):  # replayed errors are events now, and count as those
            continue
        amounts[(minute_of(get("received_at")), get("application_id") or 0, get("reason"))] += sign
    return amounts


def count_errors(conn: Connection, rows: Iterable[Any], sign: int = 1) -> None:
    """Add (or remove) open errors, given mappings or rows with application_id, reason and
    received_at, to their minutes."""
    _upsert(conn, error_counts, _ERROR_KEYS, _tally_errors(Counter(), rows, sign))


def move_errors(conn: Connection, removed: Iterable[Any], added: Iterable[Any]) -> None:
    """Count `removed` errors out and `added` ones in, with one statement."""
    amounts = _tally_errors(_tally_errors(Counter(), removed, -1), added, 1)
    _upsert(conn, error_counts, _ERROR_KEYS, amounts)


def drop_empty_minutes(conn: Connection, before: datetime) -> None:
    """Remove rollup rows that count nothing any more, older than `before`."""
    limit = minute_of(before)
    for table in (event_counts, error_counts):
        conn.execute(sa.delete(table).where(table.c.count == 0, table.c.minute < limit))


@dataclass(slots=True)
class Stats:
    """Counts per bucket start (None without buckets) of event types and error reasons."""

    events: dict[Any, Counter] = field(default_factory=dict)
    errors: dict[Any, Counter] = field(default_factory=dict)

    def add(self, part: dict[Any, Counter], bucket: Any, key: Any, n: int) -> None:
        if n:
            part.setdefault(bucket, Counter())[key] += n


def read_stats(
    conn: Connection,
    *,
    timestamp_gte: datetime | None,
    timestamp_lte: datetime | None,
    application_id: int | None,
    bucket: str | None,
) -> Stats:
    """Events by (category, name) by their timestamp, and open errors by reason by their
    received_at, within the inclusive range, summed per bucket (`minute`, `hour`, `day`, or
    None for the whole range)."""
    width = BUCKET_MINUTES[bucket] if bucket else None
    stats = Stats()

    # Whole minutes inside the range come from the rollups...
    first_full = None if timestamp_gte is None else -(-(timestamp_gte - EPOCH) // ONE_MINUTE)
    end_full = None
    if timestamp_lte is not None:
        end_full = (timestamp_lte + timedelta(microseconds=1) - EPOCH) // ONE_MINUTE
    if first_full is None or end_full is None or first_full < end_full:
        for table, keys, part in (
            (event_counts, (event_counts.c.category, event_counts.c.name), stats.events),
            (error_counts, (error_counts.c.reason,), stats.errors),
        ):
            grouped = (
                table.c.minute - table.c.minute % width if width else sa.literal(None)
            ).label("bucket")
            stmt = sa.select(grouped, *keys, sa.func.sum(table.c.count)).group_by(grouped, *keys)
            if first_full is not None:
                stmt = stmt.where(table.c.minute >= first_full)
            if end_full is not None:
                stmt = stmt.where(table.c.minute < end_full)
            if application_id is not None:
                stmt = stmt.where(table.c.application_id == application_id)
            for row in conn.execute(stmt):
                key = tuple(row[1:-1]) if len(keys) > 1 else row[1]
                stats.add(part, row[0], key, int(row[-1]))

    # ...and the partial minutes at either end from the rows themselves (each lies inside
    # one minute, so this reads at most two minutes of events and errors).
    edges: list[tuple[datetime, datetime]] = []
    if first_full is not None and end_full is not None and first_full > end_full:
        edges.append((timestamp_gte, timestamp_lte))  # the range lies inside one minute
    else:
        if timestamp_gte is not None and start_of(first_full) != timestamp_gte:
            edges.append((timestamp_gte, start_of(first_full) - timedelta(microseconds=1)))
        if timestamp_lte is not None and start_of(end_full) <= timestamp_lte:
            edges.append((start_of(end_full), timestamp_lte))
    for low, high in edges:
        if low > high:
            continue
        minute = minute_of(low)
        label = minute - minute % width if width else None
        for column, keys, part, extra in (
            (events.c.timestamp, (events.c.category, events.c.name), stats.events, None),
            (errors.c.received_at, (errors.c.reason,), stats.errors, ~errors.c.replayed),
        ):
            table = column.table
            stmt = (
                sa.select(*keys, sa.func.count())
                .where(column >= low, column <= high)
                .group_by(*keys)
            )
            if extra is not None:
                stmt = stmt.where(extra)
            if application_id is not None:
                stmt = stmt.where(table.c.application_id == application_id)
            for row in conn.execute(stmt):
                key = tuple(row[:-1]) if len(keys) > 1 else row[0]
                stats.add(part, label, key, int(row[-1]))
    return stats
