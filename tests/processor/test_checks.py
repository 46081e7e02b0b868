"""The processing checks, as pure functions: no database, no server."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import make_event
from the_eye.processor.checks import (
    EventRejected,
    Limits,
    ValidEvent,
    Violation,
    check_event,
)
from the_eye.timestamps import format_timestamp, parse_timestamp

RECEIVED = datetime(2021, 1, 1, 10, 0, 0)
LIMITS = Limits(max_event_bytes=1024, max_clock_skew=timedelta(seconds=60))


def check(raw, **kwargs):
    return check_event(raw, "id-1", RECEIVED, LIMITS, **kwargs)


def test_valid_event_is_normalised():
    outcome = check(make_event(timestamp="2021-01-01T11:15:27.5+02:00"))
    assert isinstance(outcome, ValidEvent)
    assert outcome.timestamp == datetime(2021, 1, 1, 9, 15, 27, 500000)
    assert outcome.event_id == "id-1"
    assert outcome.session_id == "s-1"


def test_session_alias_is_accepted():
    raw = make_event()
    del raw["session_id"]
    raw["session"] = {"id": "abc"}
    outcome = check(raw)
    assert isinstance(outcome, ValidEvent) and outcome.session_id == "abc"


@pytest.mark.parametrize(
    ("raw", "reason", "field"),
    [
        ([1, 2], "invalid_event", None),
        ("text", "invalid_event", None),
        (
            {k: v for k, v in make_event().items() if k != "session_id"},
            "invalid_event",
            "session_id",
        ),
        (make_event(session_id=""), "invalid_event", "session_id"),
        (make_event(session_id="x" * 129), "invalid_event", "session_id"),
        (make_event(category=5), "invalid_event", "category"),
        (make_event(name="n" * 101), "invalid_event", "name"),
        ({k: v for k, v in make_event().items() if k != "data"}, "invalid_event", "data"),
        ({k: v for k, v in make_event().items() if k != "timestamp"}, "invalid_event", "timestamp"),
        (make_event(event_id=""), "invalid_event", "event_id"),
        (make_event(data={"blob": "x" * 2000}), "event_too_large", None),
        (make_event(data=[1, 2]), "invalid_data", "data"),
        (make_event(data="{}"), "invalid_data", "data"),
        (make_event(data={}), "invalid_data", "data"),
        (make_event(timestamp="yesterday"), "invalid_timestamp", "timestamp"),
        (make_event(timestamp=1609459200), "invalid_timestamp", "timestamp"),
        (make_event(timestamp="2021-01-01 10:01:01"), "future_timestamp", "timestamp"),
    ],
)
def test_each_check_names_its_reason(raw, reason, field):
    outcome = check(raw)
    assert isinstance(outcome, EventRejected)
    assert outcome.reason == reason
    assert outcome.message
    if field:
        assert outcome.details["field"] == field
    assert outcome.event_id == "id-1"


def test_checks_run_in_order():
    # Both too large and with an empty-string category: the earlier check decides.
    outcome = check(make_event(category="", data={"blob": "x" * 2000}))
    assert outcome.reason == "invalid_event"
    # Empty data and a bad timestamp: invalid_data comes first.
    assert check(make_event(data={}, timestamp="nope")).reason == "invalid_data"


def test_clock_skew_is_allowed_up_to_the_limit():
    assert isinstance(check(make_event(timestamp="2021-01-01 10:00:59")), ValidEvent)


def test_rejection_keeps_the_raw_event():
    raw = make_event(data={})
    outcome = check(raw)
    assert '"session_id":"s-1"' in outcome.payload


def test_schema_check_runs_last_and_reports_details():
    def schema(application_id, category, name, data):
        return Violation("`path` must start with /", {"path": "$.path", "rule": "pattern"})

    outcome = check(make_event(), schema_check=schema)
    assert outcome.reason == "schema_violation"
    assert outcome.details == {"path": "$.path", "rule": "pattern"}
    assert check(make_event(timestamp="bad"), schema_check=schema).reason == "invalid_timestamp"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-01-01 09:15:27.243860", datetime(2021, 1, 1, 9, 15, 27, 243860)),
        ("2021-01-01T09:15:27", datetime(2021, 1, 1, 9, 15, 27)),
        ("2021-01-01T09:15:27Z", datetime(2021, 1, 1, 9, 15, 27)),
        ("2021-01-01T09:15:27.1-03:00", datetime(2021, 1, 1, 12, 15, 27, 100000)),
        ("not a time", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_timestamp(text, expected):
    assert parse_timestamp(text) == expected


def test_format_timestamp_is_api_md_shape():
    assert (
        format_timestamp(datetime(2021, 1, 1, 9, 15, 27, 243860)) == "2021-01-01T09:15:27.243860Z"
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)
event_like = st.fixed_dictionaries(
    {},
    optional={
        "session_id": json_values,
        "session": json_values,
        "category": json_values,
        "name": json_values,
        "data": json_values,
        "timestamp": json_values | st.datetimes().map(str),
        "event_id": json_values,
    },
)


@given(st.one_of(json_values, event_like))
def test_any_json_gets_an_answer_never_an_exception(raw):
    outcome = check(raw)
    assert isinstance(outcome, ValidEvent | EventRejected)
    if isinstance(outcome, EventRejected):
        assert outcome.reason in {
            "invalid_event",
            "event_too_large",
            "invalid_data",
            "invalid_timestamp",
            "future_timestamp",
        }
