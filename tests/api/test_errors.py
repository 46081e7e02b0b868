"""`/errors/`: each error shows the session, category and name of its raw event, and is
found by them, in the list and in bulk replay."""

from __future__ import annotations

import pytest

from tests.helpers import fetch_all, make_event, post_schema

NEEDS_PATH = {"type": "object", "required": ["path"]}
NAMED = {"empty-data", "nested-session", "no-category", "long-category", "number-name"}


def keys(error: dict) -> tuple:
    return error["session_id"], error["category"], error["name"]


def nested_session(event: dict, session_id: str) -> dict:
    """The event with its session as `session.id` (Segment style) instead of `session_id`."""
    event = {key: value for key, value in event.items() if key != "session_id"}
    return {**event, "session": {"id": session_id}}


def by_event_id(errors: list[dict]) -> dict[str, dict]:
    return {error["event_id"]: error for error in errors}


def test_an_error_shows_what_its_raw_event_says_of_session_category_and_name(
    sender, processor, reader
):
    sender.post(
        "/events/",
        json=[
            make_event(session="s-a", event_id="empty-data", data={}),
            nested_session(make_event(timestamp="bad", event_id="nested-session"), "s-b"),
            {**make_event(session="s-c", event_id="no-category"), "category": None},
            make_event(session="s-d", category="c" * 101, event_id="long-category"),
            make_event(session="s-e", name=7, event_id="number-name"),
        ],
    )
    sender.post("/events/", json=[42])
    sender.post("/events/", content=b"{not json")
    processor.drain()
    errors = fetch_all(reader, "/errors/")
    assert len(errors) == 7
    kept = by_event_id(errors)
    assert keys(kept["empty-data"]) == ("s-a", "page interaction", "pageview")
    assert keys(kept["nested-session"]) == ("s-b", "page interaction", "pageview")
    assert keys(kept["no-category"]) == ("s-c", None, "pageview")
    assert keys(kept["long-category"]) == ("s-d", None, "pageview")
    assert keys(kept["number-name"]) == ("s-e", "page interaction", None)
    rest = [e for e in errors if e["event_id"] not in NAMED]
    assert sorted(e["reason"] for e in rest) == ["invalid_event", "invalid_json"]
    assert {keys(e) for e in rest} == {(None, None, None)}  # not an object; a whole body
    one = reader.get(f"/errors/{kept['empty-data']['id']}/").json()
    assert keys(one) == ("s-a", "page interaction", "pageview")
    assert one["payload"]


@pytest.fixture
def failing(sender, processor, admin) -> list[dict]:
    """Six schema violations: two sessions, two categories, two names."""
    for category, name in (("page interaction", "pageview"), ("form interaction", "submit")):
        assert post_schema(admin, NEEDS_PATH, category, name).status_code == 201
    processor.checker.refresh(force=True)
    events = [
        make_event(
            session=f"s-{i % 2}",
            category=category,
            name=name,
            data={"host": "h"},
            event_id=f"e-{i}",
            timestamp=f"2021-01-01 09:0{i}:00",
        )
        for i, (category, name) in enumerate(
            [
                ("page interaction", "pageview"),
                ("page interaction", "pageview"),
                ("page interaction", "cta click"),
                ("form interaction", "submit"),
                ("form interaction", "submit"),
                ("page interaction", "cta click"),
            ]
        )
    ]
    # `cta click` has no schema: valid. Make it fail with an empty `data` instead.
    for event in events:
        if event["name"] == "cta click":
            event["data"] = {}
    assert sender.post("/events/", json=events).status_code == 202
    processor.drain()
    return events


def event_ids(errors: list[dict]) -> list[str]:
    return sorted(error["event_id"] for error in errors)


def test_errors_are_found_by_session_category_and_name(failing, reader):
    assert event_ids(fetch_all(reader, "/errors/", session="s-0")) == ["e-0", "e-2", "e-4"]
    assert event_ids(fetch_all(reader, "/errors/", category="form interaction")) == ["e-3", "e-4"]
    assert event_ids(fetch_all(reader, "/errors/", name="cta click")) == ["e-2", "e-5"]
    both = fetch_all(reader, "/errors/", session="s-1", category="page interaction")
    assert event_ids(both) == ["e-1", "e-5"]
    with_reason = fetch_all(reader, "/errors/", name="cta click", reason="invalid_data")
    assert event_ids(with_reason) == ["e-2", "e-5"]
    assert fetch_all(reader, "/errors/", name="cta click", reason="schema_violation") == []
    assert fetch_all(reader, "/errors/", session="nobody") == []


def test_a_filtered_list_pages_newest_first_without_gap_or_repeat(failing, reader):
    seen = fetch_all(reader, "/errors/", category="page interaction", limit=1)
    assert event_ids(seen) == ["e-0", "e-1", "e-2", "e-5"]
    # One batch, one `received_at`: newest first is then the highest id first.
    assert [e["id"] for e in seen] == sorted((e["id"] for e in seen), reverse=True)


def test_bulk_replay_takes_the_same_filters(failing, admin):
    relaxed = {"type": "object"}
    assert post_schema(admin, relaxed, "page interaction", "pageview").status_code == 201
    assert post_schema(admin, relaxed, "form interaction", "submit").status_code == 201
    counts = admin.post("/errors/replay/", params={"session": "s-0", "name": "submit"}).json()
    assert counts == {"replayed": 1, "still_failing": 0, "skipped": 0}
    assert event_ids(fetch_all(admin, "/errors/", replayed="true")) == ["e-4"]

    counts = admin.post("/errors/replay/", params={"category": "page interaction"}).json()
    assert counts == {"replayed": 2, "still_failing": 2, "skipped": 0}
    still = fetch_all(admin, "/errors/", replayed="false")
    assert event_ids(still) == ["e-2", "e-3", "e-5"]
    # A replay that fails again keeps what the raw event says.
    assert {keys(e) for e in still if e["event_id"] != "e-3"} == {
        ("s-0", "page interaction", "cta click"),
        ("s-1", "page interaction", "cta click"),
    }
    assert event_ids(fetch_all(admin, "/events/")) == ["e-0", "e-1", "e-4"]
