"""The rollups behind /stats/: kept by every write, summed per bucket when asked.

Every statement that adds, changes or removes an event or an open error also adds its
signed count to the minute, the hour and the day it falls in, in the same transaction,
with one set-based upsert (`count = count + excluded.count`). A query covers its range
with the widest slots that fit (whole days, then whole hours, then whole minutes at the
ends) and counts only the partial minutes at the very ends from the events and errors
themselves: a few hundred rows for a month, whatever the number of events, and exact
for any range.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeAlias, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from the_eye.store import dialect
from the_eye.store.tables import error_counts, errors, event_counts, events

EPOCH = datetime(1970, 1, 1)
ONE_MINUTE = timedelta(minutes=1)
BUCKET_MINUTES = {"minute": 1, "hour": 60, "day": 1440}
WIDTHS = (1440, 60, 1)  # the slots kept, widest first


def minute_of(moment: datetime) -> int:
    """Whole minutes since 1970 of a naive UTC datetime, rounded down."""
    return (moment - EPOCH) // ONE_MINUTE


def start_of(minute: int) -> datetime:
    return EPOCH + minute * ONE_MINUTE


# The slot a signed count goes to: (width, start, application_id, category, name) of an
# event, (width, start, application_id, reason) of an error.
EventSlot: TypeAlias = tuple[int, int, int, str, str]
ErrorSlot: TypeAlias = tuple[int, int, int, str]
_Slot = TypeVar("_Slot", EventSlot, ErrorSlot)


def _upsert(conn: Connection, table: sa.Table, keys: list[str], amounts: Counter[_Slot]) -> None:
    rows = [dict(zip(keys, key, strict=True), count=n) for key, n in sorted(amounts.items()) if n]
    if not rows:
        return
    stmt = dialect.insert(conn, table)
    # Sorted rows: concurrent writers take the row locks in one order and never deadlock.
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=keys, set_={"count": table.c.count + stmt.excluded.count}
        ),
        rows,
    )


_EVENT_KEYS = ["width", "start", "application_id", "category", "name"]
_ERROR_KEYS = ["width", "start", "application_id", "reason"]


def _tally_events(
    amounts: Counter[EventSlot], rows: Iterable[Any], sign: int
) -> Counter[EventSlot]:
    # Counted per minute first: a batch's events crowd into few minutes and types, so each
    # width is added once per minute and type rather than once per event.
    per_minute = Counter(
        (
            minute_of(fields["timestamp"]),
            fields["application_id"],
            fields["category"],
            fields["name"],
        )
        for fields in map(_fields, rows)
    )
    for (minute, application_id, category, name), n in per_minute.items():
        for width in WIDTHS:
            amounts[width, minute - minute % width, application_id, category, name] += sign * n
    return amounts


def _fields(row: Any) -> Mapping[str, Any]:
    """A row's columns by name, whether it is a mapping or a result row."""
    return row if isinstance(row, dict) else row._mapping


def count_events(conn: Connection, rows: Iterable[Any], sign: int = 1) -> None:
    """Add (or with sign -1 remove) events, given mappings or rows with application_id,
    category, name and timestamp, to their slots."""
    _upsert(conn, event_counts, _EVENT_KEYS, _tally_events(Counter(), rows, sign))


def move_events(conn: Connection, removed: Iterable[Any], added: Iterable[Any]) -> None:
    """Count `removed` out and `added` in with one statement, so its row locks come in one
    order (two statements could deadlock with another edit moving the other way)."""
    amounts = _tally_events(_tally_events(Counter(), removed, -1), added, 1)
    _upsert(conn, event_counts, _EVENT_KEYS, amounts)


def _tally_errors(
    amounts: Counter[ErrorSlot], rows: Iterable[Any], sign: int
) -> Counter[ErrorSlot]:
    for row in rows:
        fields = _fields(row)
        if fields.get("replayed"):  # replayed errors are events now, and count as those
            continue
        minute = minute_of(fields["received_at"])
        application_id = fields.get("application_id") or 0
        for width in WIDTHS:
            key = (width, minute - minute % width, application_id, fields["reason"])
            amounts[key] += sign
    return amounts


def count_errors(conn: Connection, rows: Iterable[Any], sign: int = 1) -> None:
    """Add (or remove) open errors, given mappings or rows with application_id, reason and
    received_at, to their slots."""
    _upsert(conn, error_counts, _ERROR_KEYS, _tally_errors(Counter(), rows, sign))


def move_errors(conn: Connection, removed: Iterable[Any], added: Iterable[Any]) -> None:
    """Count `removed` errors out and `added` ones in, with one statement."""
    amounts = _tally_errors(_tally_errors(Counter(), removed, -1), added, 1)
    _upsert(conn, error_counts, _ERROR_KEYS, amounts)


def drop_empty_slots(conn: Connection, before: datetime) -> None:
    """Remove rollup rows that count nothing any more and end before `before`."""
    limit = minute_of(before)
    for table in (event_counts, error_counts):
        conn.execute(
            sa.delete(table).where(table.c.count == 0, table.c.start + table.c.width <= limit)
        )


@dataclass(frozen=True, slots=True)
class Slots:
    """Rollup rows of one width whose start lies in [first, end) (None: unbounded)."""

    width: int
    first: int | None
    end: int | None


@dataclass(frozen=True, slots=True)
class Rows:
    """A stretch [low, high) shorter than a minute, counted from the rows themselves; `high`
    is None for the stretch from `low` to the last instant a datetime can name."""

    low: datetime
    high: datetime | None


# The last minute a datetime can name: a slot starting later lies past every timestamp.
_LAST_MINUTE = minute_of(datetime.max)


def _ceil(moment: datetime, width: int) -> int:
    return -(-(moment - EPOCH) // (width * ONE_MINUTE)) * width


def _floor(moment: datetime, width: int) -> int:
    return (moment - EPOCH) // (width * ONE_MINUTE) * width


def cover(
    low: datetime | None, high: datetime | None, widths: tuple[int, ...]
) -> list[Slots | Rows]:
    """Split [low, high) into the widest whole slots that fit and, at its ends, narrower
    ones, down to stretches inside single minutes."""
    if low is not None and high is not None and low >= high:
        return []
    if not widths:
        # Reached only at the ends of a wider slot (or inside one), never without a start.
        if low is None:
            raise ValueError("a range without a start needs at least one slot width")
        return [Rows(low, high)]
    width, narrower = widths[0], widths[1:]
    first = None if low is None else _ceil(low, width)
    end = None if high is None else _floor(high, width)
    if first is not None and (first > _LAST_MINUTE or (end is not None and first > end)):
        return cover(low, high, narrower)  # the range lies inside one slot
    parts: list[Slots | Rows] = []
    if first is None or end is None or first < end:
        parts.append(Slots(width, first, end))
    # `first` is set exactly when `low` is, and `end` when `high` is.
    if first is not None:
        parts += cover(low, start_of(first), narrower)
    if end is not None:
        parts += cover(start_of(end), high, narrower)
    return parts


@dataclass(slots=True)
class Stats:
    """Counts per bucket start (None without buckets) of event types and error reasons."""

    events: dict[int | None, Counter[tuple[str, str]]] = field(default_factory=dict)
    errors: dict[int | None, Counter[str]] = field(default_factory=dict)

    def totals(self) -> tuple[Counter[tuple[str, str]], Counter[str]]:
        """The event counts by type and the error counts by reason, summed over the buckets."""
        events: Counter[tuple[str, str]] = Counter()
        errors: Counter[str] = Counter()
        for type_counts in self.events.values():
            events.update(type_counts)
        for reason_counts in self.errors.values():
            errors.update(reason_counts)
        return events, errors


_SOURCES = (
    # (rollup, its keys, the rows, their time, their keys, which rows count, the Stats part)
    (
        event_counts,
        (event_counts.c.category, event_counts.c.name),
        events.c.timestamp,
        (events.c.category, events.c.name),
        None,
        "events",
    ),
    (
        error_counts,
        (error_counts.c.reason,),
        errors.c.received_at,
        (errors.c.reason,),
        ~errors.c.replayed,
        "errors",
    ),
)


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
    size = BUCKET_MINUTES[bucket] if bucket else None
    high = None
    if timestamp_lte is not None and timestamp_lte < datetime.max:  # else: no upper bound
        high = timestamp_lte + timedelta(microseconds=1)
    # Slots wider than the bucket would straddle buckets.
    widths = tuple(w for w in WIDTHS if size is None or w <= size)
    parts = cover(timestamp_gte, high, widths)
    stats = Stats()
    for rollup, keys, moment, row_keys, counted, part_name in _SOURCES:
        part = getattr(stats, part_name)
        for piece in parts:
            if isinstance(piece, Slots):
                start = rollup.c.start
                grouped = [(start - start % size).label("bucket")] if size else []
                stmt = sa.select(
                    *(grouped or [sa.null().label("bucket")]), *keys, sa.func.sum(rollup.c.count)
                ).where(rollup.c.width == piece.width)
                if piece.first is not None:
                    stmt = stmt.where(start >= piece.first)
                if piece.end is not None:
                    stmt = stmt.where(start < piece.end)
                if application_id is not None:
                    stmt = stmt.where(rollup.c.application_id == application_id)
                _fold(part, conn.execute(stmt.group_by(*grouped, *keys)), len(keys))
            else:
                # Inside one minute, so inside one bucket.
                minute = minute_of(piece.low)
                label = minute - minute % size if size else None
                table = moment.table
                stmt = sa.select(
                    sa.literal(label).label("bucket"), *row_keys, sa.func.count()
                ).where(moment >= piece.low)
                if piece.high is not None:  # else the last minute there is
                    stmt = stmt.where(moment < piece.high)
                if counted is not None:
                    stmt = stmt.where(counted)
                if application_id is not None:
                    # `+ 0` keeps SQLite (which has no statistics) from reading all of an
                    # application's rows through the idempotency key's index, instead of
                    # one minute of rows through the time index.
                    stmt = stmt.where(table.c.application_id + 0 == application_id)
                _fold(part, conn.execute(stmt.group_by(*row_keys)), len(row_keys))
    return stats


def extent(conn: Connection, application_id: int | None) -> tuple[datetime, datetime] | None:
    """The first and the end of the days that count any event or open error (of one
    application, or of all), or None when nothing is counted: what a range without a bound
    covers. Rows the rollups keep at zero are left out."""
    firsts, ends = [], []
    for table in (event_counts, error_counts):
        stmt = sa.select(sa.func.min(table.c.start), sa.func.max(table.c.start)).where(
            table.c.width == WIDTHS[0], table.c.count != 0
        )
        if application_id is not None:
            stmt = stmt.where(table.c.application_id == application_id)
        first, last = conn.execute(stmt).one()
        if first is not None:
            firsts.append(first)
            ends.append(last + WIDTHS[0])
    if not firsts:
        return None
    return start_of(min(firsts)), start_of(min(max(ends), _LAST_MINUTE))


def _fold(part: dict[int | None, Counter[Any]], rows: Iterable[Any], n_keys: int) -> None:
    """Add (bucket, *key, count) rows into `part`."""
    for row in rows:
        n = int(row[-1])
        if not n:
            continue
        counts = part.get(row[0])
        if counts is None:
            counts = part[row[0]] = Counter()
        counts[tuple(row[1:-1]) if n_keys > 1 else row[1]] += n
