"""Batch writes of events: sessions and rollups count exactly the rows the store kept."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from tests.consistency import assert_rollups_match_rows, assert_sessions_match_events
from the_eye.store.tables import events
from the_eye.store.writes import store_events

START = datetime(2021, 1, 1, 9, 15, 27, 243860)


def _event(event_id: str, session_id: str, minutes: int, name: str = "pageview") -> dict:
    moment = START + timedelta(minutes=minutes)
    return {
        "application_id": 1,
        "event_id": event_id,
        "session_id": session_id,
        "category": "page interaction",
        "name": name,
        "data": {"path": "/"},
        "timestamp": moment,
        "received_at": moment,
    }


def test_a_batch_of_new_events_counts_each_in_its_session_and_rollups(engine):
    batch = [_event(f"e-{i}", f"s-{i % 3}", minutes=i * 7) for i in range(30)]
    with engine.begin() as conn:
        assert store_events(conn, batch) == 30
    assert_sessions_match_events(engine)
    assert_rollups_match_rows(engine)


def test_known_and_repeated_keys_leave_sessions_and_rollups_true_to_the_rows_kept(engine):
    with engine.begin() as conn:
        assert store_events(conn, [_event("known", "s-old", minutes=0)]) == 1
    batch = [
        # Its key is kept already: this session and name must count nothing.
        _event("known", "s-never", minutes=500, name="cta click"),
        _event("new-1", "s-new", minutes=3),
        # The same key twice in one batch: the first is kept, the second counts nothing.
        _event("twice", "s-new", minutes=10),
        _event("twice", "s-other", minutes=9000, name="submit"),
        _event("new-2", "s-old", minutes=-60),
    ]
    with engine.begin() as conn:
        assert store_events(conn, batch) == 3
    with engine.connect() as conn:
        kept = dict(conn.execute(sa.select(events.c.event_id, events.c.session_id)).all())
    assert kept == {"known": "s-old", "new-1": "s-new", "twice": "s-new", "new-2": "s-old"}
    assert_sessions_match_events(engine)
    assert_rollups_match_rows(engine)
