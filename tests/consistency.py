"""Checks that what the store keeps up to date agrees with the rows it summarises."""

from __future__ import annotations

import calendar
from collections import Counter

import sqlalchemy as sa

from the_eye.store.tables import error_counts, errors, event_counts, events, sessions


def _minute(moment) -> int:
    return calendar.timegm(moment.timetuple()) // 60


def assert_sessions_match_events(engine) -> None:
    """Every session's first_seen, last_seen and event_count, recounted from its events."""
    with engine.connect() as conn:
        kept = {
            r.id: (r.first_seen, r.last_seen, r.event_count)
            for r in conn.execute(sa.select(sessions))
        }
        rows = conn.execute(sa.select(events.c.session_id, events.c.timestamp)).all()
    counted: dict[str, list] = {}
    for session_id, moment in rows:
        span = counted.setdefault(session_id, [moment, moment, 0])
        span[0], span[1], span[2] = min(span[0], moment), max(span[1], moment), span[2] + 1
    for session_id, span in counted.items():
        assert kept.get(session_id) == tuple(span), session_id
    for session_id, (first, last, count) in kept.items():
        if session_id not in counted:
            assert (first, last, count) == (None, None, 0), session_id


def assert_rollups_match_rows(engine) -> None:
    """The minute, hour and day rollups hold exactly the counts of the events and open
    errors."""
    with engine.connect() as conn:
        ev_rows = conn.execute(
            sa.select(events.c.timestamp, events.c.application_id, events.c.category, events.c.name)
        ).all()
        er_rows = conn.execute(
            sa.select(errors.c.received_at, errors.c.application_id, errors.c.reason).where(
                ~errors.c.replayed
            )
        ).all()
        ev_rollup = {
            (r.width, r.start, r.application_id, r.category, r.name): r.count
            for r in conn.execute(sa.select(event_counts))
            if r.count
        }
        er_rollup = {
            (r.width, r.start, r.application_id, r.reason): r.count
            for r in conn.execute(sa.select(error_counts))
            if r.count
        }
    ev: Counter = Counter()
    er: Counter = Counter()
    for width in (1, 60, 1440):
        for moment, app, category, name in ev_rows:
            ev[(width, _minute(moment) // width * width, app, category, name)] += 1
        for moment, app, reason in er_rows:
            er[(width, _minute(moment) // width * width, app or 0, reason)] += 1
    assert ev_rollup == dict(ev)
    assert er_rollup == dict(er)
