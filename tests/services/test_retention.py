"""Retention: a purge removes exactly what is older than the cutoff, and keeps counters right."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import sqlalchemy as sa

from tests.consistency import assert_rollups_match_rows, assert_sessions_match_events
from the_eye.services.retention import PurgeCounts, cutoff_for, purge
from the_eye.store.sessions import create_sessions
from the_eye.store.tables import errors, events, sessions
from the_eye.store.writes import store_errors, store_events

CUTOFF = datetime(2021, 1, 10)
TINY = timedelta(microseconds=1)


def event(i: int, session: str, moment: datetime, app: int) -> dict:
    return {
        "application_id": app,
        "event_id": f"e-{i}",
        "session_id": session,
        "category": "page interaction",
        "name": random.Random(i).choice(["pageview", "cta click"]),
        "data": {"i": i},
        "timestamp": moment,
        "received_at": moment,
    }


def error(reason: str, moment: datetime, app: int, replayed: bool = False) -> dict:
    return {
        "application_id": app,
        "event_id": None,
        "reason": reason,
        "message": "m",
        "details": None,
        "payload": "{}",
        "received_at": moment,
        "replayed": replayed,
    }


def ids(engine, table) -> set:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(table.c.id)).scalars())


def test_purge_removes_exactly_what_is_older_than_the_cutoff(engine, creds):
    app = creds.application_id
    rng = random.Random(3)
    rows = []
    for i in range(300):
        moment = CUTOFF + timedelta(seconds=rng.randrange(-5 * 86400, 5 * 86400))
        session = "old" if moment < CUTOFF - timedelta(days=1) else f"s-{i % 5}"
        rows.append(event(i, session, moment, app))
    # The edges: one instant before the cutoff goes, the cutoff itself stays.
    rows += [event(1000, "edge", CUTOFF - TINY, app), event(1001, "edge", CUTOFF, app)]
    old_errors = [error("invalid_data", CUTOFF - timedelta(hours=h), app) for h in (1, 30)]
    old_errors.append(error("schema_violation", CUTOFF - TINY, app, replayed=True))
    new_errors = [error("invalid_data", CUTOFF, app), error("invalid_data", CUTOFF + TINY, app)]
    with engine.begin() as conn:
        store_events(conn, rows)
        store_errors(conn, old_errors + new_errors)
        create_sessions(conn, ["never-used-old"], CUTOFF - timedelta(days=2))
        create_sessions(conn, ["never-used-new"], CUTOFF + timedelta(hours=1))
    with engine.connect() as conn:
        keep_events = set(
            conn.execute(sa.select(events.c.id).where(events.c.timestamp >= CUTOFF)).scalars()
        )
        keep_errors = set(
            conn.execute(sa.select(errors.c.id).where(errors.c.received_at >= CUTOFF)).scalars()
        )
    old_events = len(rows) - len(keep_events)
    assert 0 < len(keep_events) < len(rows)

    seen: list[PurgeCounts] = []
    counts = purge(engine, CUTOFF, batch_size=17, progress=lambda c: seen.append(c.events))
    assert ids(engine, events) == keep_events
    assert ids(engine, errors) == keep_errors
    # "old" had only old events; the never-used old session was empty; both go.
    assert ids(engine, sessions) == {"edge", "never-used-new"} | {f"s-{i}" for i in range(5)}
    assert (counts.events, counts.errors, counts.sessions) == (old_events, 3, 2)
    assert len(seen) > old_events // 17  # batch by batch

    with engine.connect() as conn:
        edge = conn.execute(sa.select(sessions).where(sessions.c.id == "edge")).one()
    assert (edge.first_seen, edge.last_seen, edge.event_count) == (CUTOFF, CUTOFF, 1)
    assert_sessions_match_events(engine)
    assert_rollups_match_rows(engine)

    again = purge(engine, CUTOFF, batch_size=17)
    assert (again.events, again.errors, again.sessions) == (0, 0, 0)


def test_cutoff_is_that_many_days_before_now():
    now = datetime(2021, 3, 1, 12, 0, 0)
    assert cutoff_for(30, now) == datetime(2021, 1, 30, 12, 0, 0)


def test_stats_no_longer_count_what_was_purged(engine, creds, admin):
    with engine.begin() as conn:
        store_events(
            conn,
            [
                event(1, "a", CUTOFF - timedelta(minutes=1), creds.application_id),
                event(2, "a", CUTOFF + timedelta(minutes=1), creds.application_id),
            ],
        )
    purge(engine, CUTOFF)
    totals = admin.get("/stats/").json()["totals"]["events"]
    assert sum(t["count"] for t in totals) == 1
