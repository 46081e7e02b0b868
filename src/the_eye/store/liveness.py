"""Processor heartbeats: each running processor upserts its row every few seconds, idle or
not, so that `/ready/` and `/metrics` can tell a processor that died or hangs.

A processor names itself (host, pid and a random part) when it starts, removes its row when
it stops cleanly, and drops rows silent for a day (processors that were killed) at start.
A processor is alive while its last beat is younger than three heartbeat intervals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from the_eye.store import dialect
from the_eye.store.tables import processors

# A processor silent for this many heartbeat intervals counts as down.
SILENT_BEATS = 3
_FORGOTTEN_AFTER = timedelta(days=1)


def beat(conn: Connection, name: str, started_at: datetime, now: datetime) -> None:
    """Record that processor `name` is alive now (one upsert)."""
    stmt = dialect.insert(conn, processors).values(name=name, started_at=started_at, beat_at=now)
    conn.execute(stmt.on_conflict_do_update(index_elements=["name"], set_={"beat_at": now}))


def forget(conn: Connection, name: str | None = None, now: datetime | None = None) -> None:
    """Remove processor `name`'s row, or (with `now`) those silent for a day."""
    if name is not None:
        conn.execute(sa.delete(processors).where(processors.c.name == name))
    if now is not None:
        conn.execute(sa.delete(processors).where(processors.c.beat_at < now - _FORGOTTEN_AFTER))


@dataclass(frozen=True, slots=True)
class Liveness:
    """What the heartbeats say at one moment."""

    alive: int
    last_beat_age: float | None  # seconds since the freshest beat; None when none is known


def liveness(conn: Connection, now: datetime, interval: float) -> Liveness:
    """How many processors beat within `SILENT_BEATS` intervals, and the freshest beat's age."""
    fresh_since = now - timedelta(seconds=interval * SILENT_BEATS)
    alive = sa.func.count().filter(processors.c.beat_at >= fresh_since)
    row = conn.execute(sa.select(alive, sa.func.max(processors.c.beat_at))).one()
    last = row[1]
    if isinstance(last, str):  # SQLite's text form, from an aggregate
        last = datetime.fromisoformat(last)
    age = None if last is None else max((now - last).total_seconds(), 0.0)
    return Liveness(alive=row[0], last_beat_age=age)
