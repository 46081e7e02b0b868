"""The event checker and the row of a checked event: one of each, for every path."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.helpers import make_event
from the_eye.config import Settings
from the_eye.processor.checker import EventChecker
from the_eye.processor.checks import EventRejected, Limits, ValidEvent, check_event
from the_eye.processor.schemas import SchemaRegistry
from the_eye.services.schemas import register_schema
from the_eye.store.tables import events

RECEIVED = datetime(2021, 1, 2)


def test_a_valid_events_row_fills_every_column_of_events_but_the_server_id():
    outcome = EventChecker().check(make_event(event_id="e-1"), "e-1", RECEIVED, 7)
    assert isinstance(outcome, ValidEvent)
    row = outcome.row()
    assert set(row) == {column.name for column in events.columns} - {"id"}
    assert row == {
        "application_id": 7,
        "event_id": "e-1",
        "session_id": "s-1",
        "category": "page interaction",
        "name": "pageview",
        "data": {"host": "www.consumeraffairs.com", "path": "/"},
        "timestamp": datetime(2021, 1, 1, 9, 15, 27, 243860),
        "received_at": RECEIVED,
    }


def test_the_checker_answers_as_check_event_with_its_limits_and_schemas(engine):
    with engine.begin() as conn:
        register_schema(conn, "page interaction", "pageview", {"required": ["path"]})
    registry = SchemaRegistry(engine)
    registry.refresh(force=True)
    limits = Limits(max_event_bytes=300, max_clock_skew=timedelta(seconds=5))
    checker = EventChecker(limits, registry)
    for raw in (
        make_event(),
        make_event(data={"host": "h"}),
        make_event(data={"blob": "x" * 400}),
        make_event(timestamp="2021-01-02T00:00:06"),
        "not an object",
    ):
        expected = check_event(raw, "id-1", RECEIVED, limits, registry.check, 3)
        assert checker.check(raw, "id-1", RECEIVED, 3) == expected


def test_a_checker_without_a_registry_checks_no_schemas():
    outcome = EventChecker().check(make_event(data={"anything": 1}), "id-1", RECEIVED, 1)
    assert isinstance(outcome, ValidEvent)
    EventChecker().refresh(force=True)  # nothing to refresh, and no error


def test_from_settings_takes_the_settings_limits_and_refresh_interval(engine):
    settings = Settings(
        max_event_bytes=200, max_clock_skew=5.0, schema_refresh_seconds=30.0, _env_file=None
    )
    checker = EventChecker.from_settings(settings, engine)
    assert checker.limits == Limits(200, timedelta(seconds=5))
    assert checker.schemas is not None and checker.schemas.refresh_seconds == 30.0
    too_big = checker.check(make_event(data={"blob": "x" * 200}), "id-1", RECEIVED, 1)
    assert isinstance(too_big, EventRejected) and too_big.reason == "event_too_large"


def test_new_schema_versions_apply_after_a_refresh(engine):
    checker = EventChecker(Limits(), SchemaRegistry(engine, refresh_seconds=3600))
    checker.refresh()
    with engine.begin() as conn:
        register_schema(conn, "page interaction", "pageview", {"required": ["nope"]})
    raw = make_event()
    checker.refresh()  # within the interval: the new version is not seen yet
    assert isinstance(checker.check(raw, "id-1", RECEIVED, 1), ValidEvent)
    checker.refresh(force=True)
    rejected = checker.check(raw, "id-1", RECEIVED, 1)
    assert isinstance(rejected, EventRejected) and rejected.reason == "schema_violation"
