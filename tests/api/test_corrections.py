"""`PATCH`, `PUT`, `DELETE /events/{id}/`: edits pass the checks; sessions and stats follow."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.consistency import assert_rollups_match_rows, assert_sessions_match_events
from tests.helpers import client_as, fetch_all, make_event, post_schema


@pytest.fixture
def three(sender, processor, admin):
    """Three events of session `a`, at 09:00, 09:01 and 09:02, by event_id."""
    sender.post(
        "/events/",
        json=[
            make_event(session="a", event_id=f"e{i}", timestamp=f"2021-01-01 09:0{i}:00")
            for i in range(3)
        ],
    )
    processor.drain()
    return {e["event_id"]: e for e in fetch_all(admin, "/events/")}


def session(admin, session_id):
    return admin.get(f"/sessions/{session_id}/").json()


def test_patch_changes_the_event_and_its_sessions_follow(three, admin, engine):
    last = three["e2"]
    answer = admin.patch(f"/events/{last['id']}/", json={"timestamp": "2021-01-01 08:00:00"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["timestamp"] == "2021-01-01T08:00:00.000000Z"
    assert answer.json()["data"] == last["data"]
    assert admin.get(f"/events/{last['id']}/").json() == answer.json()
    assert session(admin, "a") == {
        "id": "a",
        "first_seen": "2021-01-01T08:00:00.000000Z",
        "last_seen": "2021-01-01T09:01:00.000000Z",
        "event_count": 3,
    }

    moved = admin.patch(f"/events/{three['e0']['id']}/", json={"session_id": "b", "name": "x"})
    assert moved.json()["session_id"] == "b" and moved.json()["name"] == "x"
    assert session(admin, "a")["event_count"] == 2
    assert session(admin, "a")["first_seen"] == "2021-01-01T08:00:00.000000Z"
    assert session(admin, "b") == {
        "id": "b",
        "first_seen": "2021-01-01T09:00:00.000000Z",
        "last_seen": "2021-01-01T09:00:00.000000Z",
        "event_count": 1,
    }
    assert_sessions_match_events(engine)
    assert_rollups_match_rows(engine)


def test_put_replaces_the_event_and_keeps_its_ids(three, admin):
    event = three["e1"]
    replacement = make_event(session="c", name="submit", data={"form": {"a": 1}})
    answer = admin.put(f"/events/{event['id']}/", json=replacement)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["id"], body["event_id"], body["received_at"]) == (
        event["id"],
        "e1",
        event["received_at"],
    )
    assert (body["session_id"], body["name"], body["data"]) == ("c", "submit", {"form": {"a": 1}})
    # A PUT is a whole event: leaving out a required field is an invalid event.
    partial = admin.put(f"/events/{event['id']}/", json={"name": "only"})
    assert partial.status_code == 400
    assert partial.json()["error"]["code"] == "invalid_event"


def test_an_edit_gets_the_same_checks_and_a_400_changes_nothing(three, admin, engine):
    event = three["e0"]
    future = admin.patch(f"/events/{event['id']}/", json={"timestamp": "2999-01-01T00:00:00Z"})
    assert future.status_code == 400
    assert future.json()["error"]["code"] == "future_timestamp"
    assert future.json()["error"]["details"]["field"] == "timestamp"
    for changes, code in (
        ({"data": {}}, "invalid_data"),
        ({"data": [1]}, "invalid_data"),
        ({"timestamp": "someday"}, "invalid_timestamp"),
        ({"category": ""}, "invalid_event"),
        ({"session_id": 5}, "invalid_event"),
        ({"data": {"blob": "x" * 70_000}}, "event_too_large"),
    ):
        answer = admin.patch(f"/events/{event['id']}/", json=changes)
        assert answer.status_code == 400, changes
        assert answer.json()["error"]["code"] == code

    post_schema(admin, {"type": "object", "required": ["path"]})
    violation = admin.patch(f"/events/{event['id']}/", json={"data": {"host": "h"}})
    assert violation.status_code == 400
    error = violation.json()["error"]
    assert error["code"] == "schema_violation"
    assert error["details"]["path"] == "$.data.path"
    assert error["details"]["rule"] == "required"
    assert error["details"]["schema_version"] == 1

    assert admin.get(f"/events/{event['id']}/").json() == event
    assert session(admin, "a")["event_count"] == 3
    assert_rollups_match_rows(engine)


def test_malformed_edits_are_400_and_read_only_fields_are_ignored(three, admin):
    event = three["e0"]
    assert admin.patch(f"/events/{event['id']}/", json=[1]).status_code == 400
    unknown = admin.patch(f"/events/{event['id']}/", json={"colour": "red"})
    assert unknown.status_code == 400 and "colour" in unknown.json()["error"]["message"]
    bad_json = admin.patch(
        f"/events/{event['id']}/", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert bad_json.status_code == 400
    form = admin.patch(f"/events/{event['id']}/", data={"name": "x"})
    assert form.status_code == 415 and "application/json" in form.json()["error"]["message"]
    # The event as GET shows it can be sent back whole.
    echoed = admin.put(f"/events/{event['id']}/", json={**event, "name": "renamed"})
    assert echoed.status_code == 200 and echoed.json()["name"] == "renamed"
    assert echoed.json()["received_at"] == event["received_at"]


@pytest.mark.parametrize("number", ["1e400", "-1e400", "NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_an_edit_with_a_number_ingest_refuses_is_400_and_changes_nothing(
    three, admin, sender, method, number
):
    event = three["e0"]
    fields = '"data": {"k": {"deep": [1, ' + number + "]}}"
    if method == "PUT":
        fields += ', "session_id": "a", "category": "c", "name": "n", "timestamp": "2021-01-01"'
    answer = admin.request(
        method,
        f"/events/{event['id']}/",
        content="{" + fields + "}",
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_json"
    assert admin.get(f"/events/{event['id']}/").json() == event
    # Ingest refuses the same number alike.
    sent = sender.post(
        "/events/",
        content='{"session_id": "a", "category": "c", "name": "n", "timestamp": "2021-01-01", '
        + fields
        + "}",
        headers={"Content-Type": "application/json"},
    )
    assert sent.status_code == 400 and sent.json()["error"]["code"] == "invalid_json"


def test_an_event_id_edit_respects_the_key_uniqueness(three, admin, sender, processor):
    taken = admin.patch(f"/events/{three['e0']['id']}/", json={"event_id": "e1"})
    assert taken.status_code == 409
    assert taken.json()["error"]["code"] == "conflict"
    renamed = admin.patch(f"/events/{three['e0']['id']}/", json={"event_id": "fresh"})
    assert renamed.status_code == 200 and renamed.json()["event_id"] == "fresh"
    # The old key is free again, and the new one is known to the idempotency check.
    sender.post("/events/", json=[make_event(event_id="e0"), make_event(event_id="fresh")])
    processor.drain()
    assert sorted(e["event_id"] for e in fetch_all(admin, "/events/")) == [
        "e0",
        "e1",
        "e2",
        "fresh",
    ]


def test_delete_removes_the_event_and_recounts_its_session(three, admin, engine):
    assert admin.delete(f"/events/{three['e2']['id']}/").status_code == 204
    assert admin.get(f"/events/{three['e2']['id']}/").status_code == 404
    assert admin.delete(f"/events/{three['e2']['id']}/").status_code == 404
    assert session(admin, "a")["last_seen"] == "2021-01-01T09:01:00.000000Z"
    assert session(admin, "a")["event_count"] == 2
    for key in ("e0", "e1"):
        admin.delete(f"/events/{three[key]['id']}/")
    assert session(admin, "a") == {
        "id": "a",
        "first_seen": None,
        "last_seen": None,
        "event_count": 0,
    }
    assert admin.get("/stats/").json()["totals"]["events"] == []
    assert_rollups_match_rows(engine)


def test_edits_need_an_admin_token(three, server, reader):
    event_id = three["e0"]["id"]
    assert reader.patch(f"/events/{event_id}/", json={"name": "x"}).status_code == 403
    assert reader.put(f"/events/{event_id}/", json=make_event()).status_code == 403
    assert reader.delete(f"/events/{event_id}/").status_code == 403
    assert httpx.patch(f"{server.url}/events/1/", json={"name": "x"}).status_code == 401


def test_concurrent_edits_deletes_and_processing_keep_sessions_right(
    server, creds, sender, processor, admin, engine
):
    """8 editors move events between 4 sessions and delete some, while new events of the
    same sessions are processed; every counter ends equal to a recount."""
    sessions = [f"s-{i}" for i in range(4)]
    sender.post(
        "/events/",
        json=[
            make_event(session=sessions[i % 4], timestamp=f"2021-01-01 10:{i % 60:02d}:00")
            for i in range(120)
        ],
    )
    processor.drain()
    ids = [e["id"] for e in fetch_all(admin, "/events/")]
    stop = threading.Event()
    background = threading.Thread(target=processor.run, args=(stop, 0.005))
    background.start()

    def edit(worker: int) -> None:
        rng = random.Random(worker)
        with client_as(server, creds.admin_token, timeout=60) as client:
            for _ in range(15):
                target = rng.choice(ids)
                if rng.random() < 0.15:
                    answer = client.delete(f"/events/{target}/")
                    assert answer.status_code in (204, 404), answer.text
                    continue
                changes = {
                    "session_id": rng.choice(sessions),
                    "timestamp": f"2021-01-0{rng.randrange(1, 4)} {rng.randrange(24):02d}:00:00",
                }
                answer = client.patch(f"/events/{target}/", json=changes)
                assert answer.status_code in (200, 404), answer.text

    def send() -> None:
        for i in range(20):
            batch = [
                make_event(session=sessions[j % 4], timestamp=f"2021-01-02 12:{i:02d}:{j:02d}")
                for j in range(10)
            ]
            assert sender.post("/events/", json=batch).status_code == 202

    with ThreadPoolExecutor(9) as pool:
        futures = [pool.submit(edit, w) for w in range(8)] + [pool.submit(send)]
        for future in futures:
            future.result()
    stop.set()
    background.join()
    processor.drain()
    assert len(fetch_all(admin, "/events/")) > 200
    assert_sessions_match_events(engine)
    assert_rollups_match_rows(engine)
