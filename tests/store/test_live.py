"""The live view's query: newest stored first, only above the newest shown, and a filter
that looks through a bounded number of the newest events, down the primary key."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.store.test_queries import plan
from the_eye.store import live
from the_eye.store.live import LOOK_BACK, LiveFilter, newest_events
from the_eye.store.tables import events

START = datetime(2021, 1, 1)


def _store(engine, count: int, category: str = "page", application_id: int = 1) -> None:
    with engine.begin() as conn:
        conn.execute(
            events.insert(),
            [
                {
                    "application_id": application_id,
                    "event_id": f"{category}-{application_id}-{i}-{datetime.now().timestamp()}",
                    "session_id": f"s-{i % 7}",
                    "category": category,
                    "name": "view",
                    "data": {"i": i},
                    # Event times need not follow the order events are stored in.
                    "timestamp": START - timedelta(seconds=i),
                    "received_at": START,
                }
                for i in range(count)
            ],
        )


def _ids(found) -> list[int]:
    return [row.id for row in found.rows]


def test_events_come_newest_stored_first_and_only_above_the_newest_shown(engine):
    _store(engine, 5)
    with engine.connect() as conn:
        first = newest_events(conn, LiveFilter(), None, 3)
        assert first.more and first.newest_id == _ids(first)[0]
        assert _ids(first) == sorted(_ids(first), reverse=True)
        assert newest_events(conn, LiveFilter(), first.newest_id, 3).rows == []
    _store(engine, 2, category="click")
    with engine.connect() as conn:
        later = newest_events(conn, LiveFilter(), first.newest_id, 3)
        assert [row.category for row in later.rows] == ["click", "click"]
        assert not later.more and later.newest_id == first.newest_id + 2


def test_filters_match_by_application_category_and_name(engine):
    _store(engine, 3, category="page", application_id=1)
    _store(engine, 2, category="click", application_id=2)
    with engine.connect() as conn:
        assert len(newest_events(conn, LiveFilter(category="click"), None, 10).rows) == 2
        assert len(newest_events(conn, LiveFilter(application_id=1), None, 10).rows) == 3
        both = LiveFilter(application_id=1, category="click", name="view")
        nothing = newest_events(conn, both, None, 10)
        # Nothing matched: the next poll starts above the newest event stored.
        assert nothing.rows == [] and nothing.newest_id == live.newest_id(conn)


def test_a_filter_looks_only_through_the_newest_stored_events(engine):
    _store(engine, 1, category="rare")
    _store(engine, LOOK_BACK)
    with engine.connect() as conn:
        assert newest_events(conn, LiveFilter(category="rare"), None, 10).rows == []
        assert len(newest_events(conn, LiveFilter(), None, 10).rows) == 10
    _store(engine, 1, category="rare")
    with engine.connect() as conn:
        (found,) = newest_events(conn, LiveFilter(category="rare"), None, 10).rows
        assert found.id == live.newest_id(conn)


def test_a_filtered_look_walks_the_primary_key_without_sorting_on_sqlite(engine):
    # SQLite keeps no statistics (the store never runs ANALYZE), so left to itself it would
    # read the whole category through its index and sort it; PostgreSQL weighs the two.
    if engine.dialect.name != "sqlite":
        pytest.skip("a plan SQLite picks without statistics")
    _store(engine, 2_000, category="page")
    _store(engine, 10, category="rare")
    where = LiveFilter(application_id=1, category="rare", name="view")
    explained = plan(engine, live.select_newest(where, 100, 51))
    assert "ix_events_category" not in explained, explained
    assert "TEMP B-TREE" not in explained and "Sort" not in explained, explained
