"""The pure mapping of Segment messages onto events, and its meeting with the checks."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from the_eye.processor.checks import EventRejected, Limits, ValidEvent, check_event
from the_eye.processor.segment import MappingFailed, segment_event, segment_events
from the_eye.segment_wire import (
    MessageTooLarge,
    read_segment_body,
    segment_call,
    segment_kind,
)
from the_eye.wire import BodyRejected

RECEIVED = datetime(2024, 5, 1, 12, 0, 0)


def track(**overrides) -> dict:
    message = {
        "type": "track",
        "event": "Order Completed",
        "userId": "user-1",
        "anonymousId": "anon-1",
        "messageId": "m-1",
        "properties": {"revenue": 10},
        "context": {"ip": "203.0.113.9"},
        "timestamp": "2024-05-01T11:00:00.000Z",
    }
    message.update(overrides)
    return message


def test_track_takes_its_event_as_name_and_its_type_as_category():
    event = segment_event(track(), RECEIVED)
    assert event["name"] == "Order Completed"
    assert event["category"] == "track"
    assert event["session_id"] == "anon-1"
    assert event["timestamp"] == "2024-05-01T11:00:00.000000Z"


def test_properties_category_wins_over_the_type():
    event = segment_event(track(properties={"category": "checkout"}), RECEIVED)
    assert event["category"] == "checkout"
    assert segment_event(track(properties={"category": ""}), RECEIVED)["category"] == "track"


@pytest.mark.parametrize(
    ("message", "name"),
    [
        ({"type": "page", "name": "Pricing"}, "Pricing"),
        ({"type": "page"}, "page"),
        ({"type": "page", "name": ""}, "page"),
        ({"type": "screen", "name": "Home"}, "screen"),
        ({"type": "identify", "traits": {"plan": "pro"}}, "identify"),
        ({"type": "group", "groupId": "g-1"}, "group"),
        ({"type": "alias", "previousId": "anon-1"}, "alias"),
    ],
)
def test_name_is_the_page_name_or_the_type(message, name):
    event = segment_event({**message, "userId": "u"}, RECEIVED)
    assert event["name"] == name
    assert event["category"] == message["type"]


def test_session_comes_from_context_then_properties_then_anonymous_then_user():
    full = track(context={"sessionId": "ctx"}, properties={"session_id": "prop"})
    assert segment_event(full, RECEIVED)["session_id"] == "ctx"
    assert segment_event(track(properties={"session_id": "prop"}), RECEIVED)["session_id"] == "prop"
    assert segment_event(track(), RECEIVED)["session_id"] == "anon-1"
    assert segment_event(track(anonymousId=None), RECEIVED)["session_id"] == "user-1"
    assert segment_event(track(anonymousId=None, userId=42), RECEIVED)["session_id"] == "42"


def test_data_keeps_everything_sent_but_the_write_key():
    message = track(writeKey="secret", integrations={"All": True}, traits={"x": 1})
    data = segment_event(message, RECEIVED)["data"]
    assert "writeKey" not in data
    assert data == {k: v for k, v in message.items() if k != "writeKey"}


def test_batch_context_is_merged_under_the_message_context():
    document = {
        "batch": [track(context={"ip": "mine"}), track(messageId="m-2", context=None)],
        "context": {"ip": "batch", "library": {"name": "x"}},
        "sentAt": "2024-05-01T11:00:00Z",
    }
    first, second = segment_events(document, "batch", RECEIVED)
    assert first["data"]["context"] == {"ip": "mine", "library": {"name": "x"}}
    assert second["data"]["context"] == {"ip": "batch", "library": {"name": "x"}}
    assert first["data"]["sentAt"] == "2024-05-01T11:00:00Z"


def test_batch_context_session_id_sets_the_session():
    document = {"batch": [track()], "context": {"sessionId": "from-batch"}}
    assert segment_events(document, "batch", RECEIVED)[0]["session_id"] == "from-batch"


def test_a_single_call_takes_its_type_from_the_path():
    [event] = segment_events({"userId": "u", "event": "Clicked"}, "track", RECEIVED)
    assert (event["name"], event["category"]) == ("Clicked", "track")
    assert event["data"]["type"] == "track"
    with pytest.raises(BodyRejected):
        segment_events(["not", "a", "message"], "track", RECEIVED)
    with pytest.raises(BodyRejected):
        segment_events({"batch": "nope"}, "batch", RECEIVED)


def test_timestamp_is_corrected_for_the_client_clock():
    # The client's clock is an hour fast: it says it sent at 13:00:05, an event of 13:00:00.
    message = track(timestamp="2024-05-01T13:00:00Z", sentAt="2024-05-01T13:00:05Z")
    assert segment_event(message, RECEIVED)["timestamp"] == "2024-05-01T11:59:55.000000Z"
    # A batch-level sentAt does the same for messages without their own.
    document = {
        "batch": [track(timestamp="2024-05-01T13:00:00Z")],
        "sentAt": "2024-05-01T13:00:05Z",
    }
    [event] = segment_events(document, "batch", RECEIVED)
    assert event["timestamp"] == "2024-05-01T11:59:55.000000Z"


def test_timestamp_falls_back_to_original_timestamp_then_received_at():
    original = track(timestamp=None, originalTimestamp="2024-05-01T10:00:00+02:00")
    assert segment_event(original, RECEIVED)["timestamp"] == "2024-05-01T08:00:00.000000Z"
    bare = track(timestamp=None)
    assert segment_event(bare, RECEIVED)["timestamp"] == "2024-05-01T12:00:00.000000Z"


def test_a_bad_sent_at_leaves_the_timestamp_as_sent():
    message = track(sentAt="whenever")
    assert segment_event(message, RECEIVED)["timestamp"] == "2024-05-01T11:00:00.000000Z"


def check(message, call: str | None = None) -> ValidEvent | EventRejected:
    mapped = segment_event(message, RECEIVED, call)
    if isinstance(mapped, MappingFailed):
        payload = mapped.payload.decode()
        return EventRejected(mapped.reason, mapped.message, payload, "id-1", mapped.details)
    return check_event(mapped, "id-1", RECEIVED, Limits())


def test_mapped_events_pass_the_same_checks():
    valid = check(track())
    assert isinstance(valid, ValidEvent)
    assert valid.event_id == "id-1" and valid.data["properties"] == {"revenue": 10}


@pytest.mark.parametrize(
    ("message", "reason", "field"),
    [
        ("not an object", "invalid_event", None),
        (track(anonymousId=None, userId=None), "invalid_event", "session_id"),
        (track(type="purchase"), "invalid_event", "type"),
        (track(type=None), "invalid_event", "type"),
        (track(event=None), "invalid_event", "name"),
        (track(event="x" * 101), "invalid_event", "name"),
        (track(timestamp="yesterday"), "invalid_timestamp", "timestamp"),
        (track(timestamp="2999-01-01T00:00:00Z"), "future_timestamp", "timestamp"),
        (track(properties={"blob": "x" * 70_000}), "event_too_large", None),
    ],
)
def test_bad_messages_become_the_usual_errors(message, reason, field):
    outcome = check(message)
    assert isinstance(outcome, EventRejected)
    assert outcome.reason == reason
    if field:
        assert outcome.details["field"] == field


def test_the_error_payload_keeps_the_message():
    outcome = check(track(event=None, properties={"sku": "A-1"}))
    assert isinstance(outcome, EventRejected)
    assert '"sku":"A-1"' in outcome.payload


SEGMENT_FIELDS = (
    "type",
    "event",
    "name",
    "userId",
    "anonymousId",
    "properties",
    "context",
    "timestamp",
    "sentAt",
    "originalTimestamp",
    "messageId",
    "traits",
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(
    message=st.dictionaries(
        st.sampled_from(SEGMENT_FIELDS),
        json_values,
    )
    | json_values,
    call=st.sampled_from([None, "track", "page", "identify"]),
)
def test_any_message_maps_and_gets_an_answer_never_an_exception(message, call):
    assert isinstance(check(message, call), ValidEvent | EventRejected)


def test_kinds_name_their_call():
    assert segment_kind("track") == "segment/track"
    assert segment_call("segment/identify") == "identify"
    assert segment_call("segment/nope") is None
    assert segment_call("events") is None


def test_reading_a_body_takes_message_ids_and_the_write_key():
    body = b'{"writeKey": "k", "batch": [{"messageId": "a"}, {"messageId": 7}, 3, {}]}'
    assert read_segment_body(body, "batch", 1000) == (["a", "7", None, None], "k")
    assert read_segment_body(b'{"messageId": "' + b"x" * 129 + b'"}', "page", 1000) == (
        [None],
        None,
    )


@pytest.mark.parametrize(
    ("body", "call"),
    [(b"{nope", "batch"), (b"[]", "batch"), (b'{"batch": {}}', "batch"), (b"[1]", "track")],
)
def test_reading_a_body_of_the_wrong_shape_is_rejected(body, call):
    with pytest.raises(BodyRejected):
        read_segment_body(body, call, 1000)


def test_reading_a_body_bounds_each_message():
    big = b'{"batch": [{"a": 1}, {"blob": "' + b"x" * 100 + b'"}]}'
    with pytest.raises(MessageTooLarge, match="Message 1"):
        read_segment_body(big, "batch", 100)


def test_an_unknown_message_type_says_so():
    outcome = check(track(type="purchase"))
    assert isinstance(outcome, EventRejected)
    assert outcome.message.startswith("`type` is not a Segment message type: one of track,")
    assert '"type":"purchase"' in outcome.payload


def test_a_timestamp_and_sent_at_too_far_apart_fail_that_message_alone():
    far = track(timestamp="0001-01-01T00:00:00Z", sentAt="9999-12-31T23:59:59Z")
    outcome = check(far)
    assert isinstance(outcome, EventRejected)
    assert (outcome.reason, outcome.details) == ("invalid_timestamp", {"field": "timestamp"})
    events = segment_events({"batch": [far, track()]}, "batch", RECEIVED)
    assert isinstance(events[0], MappingFailed) and isinstance(events[1], dict)
