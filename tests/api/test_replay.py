"""`POST /errors/{id}/replay/` and `POST /errors/replay/`: fixed errors become events, once."""

from __future__ import annotations

import httpx
import sqlalchemy as sa

from tests.conftest import fetch_all, make_event
from tests.consistency import assert_rollups_match_rows, assert_sessions_match_events
from the_eye.services import replay
from the_eye.store.tables import errors

STRICT_PATH = {"type": "object", "required": ["path"], "properties": {"path": {"pattern": "^/"}}}


def post_schema(reader, schema, category="page interaction", name="pageview"):
    answer = reader.post("/schemas/", json={"category": category, "name": name, "schema": schema})
    assert answer.status_code == 201, answer.text


def only_error(reader) -> dict:
    (error,) = fetch_all(reader, "/errors/")
    return error


def test_a_fixed_error_becomes_exactly_one_event_and_replaying_twice_stores_once(
    sender, processor, reader, engine
):
    post_schema(reader, STRICT_PATH)
    processor.checker.refresh(force=True)
    sender.post("/events/", json=make_event(session="r", event_id="e-1", data={"path": "x"}))
    processor.drain()
    error = only_error(reader)
    assert error["reason"] == "schema_violation"

    # The rule is unchanged: the error stays, with the version that was applied.
    again = reader.post(f"/errors/{error['id']}/replay/")
    assert again.status_code == 200, again.text
    assert again.json()["outcome"] == "still_failing"
    assert again.json()["details"]["schema_version"] == 1

    post_schema(reader, {"type": "object", "required": ["path"]})
    fixed = reader.post(f"/errors/{error['id']}/replay/").json()
    assert fixed["outcome"] == "replayed" and fixed["replayed"] is True
    (event,) = fetch_all(reader, "/events/")
    assert fixed["replayed_event"] == event["id"]
    assert event["event_id"] == "e-1"
    assert event["received_at"] == error["received_at"]
    assert reader.get("/sessions/r/").json()["event_count"] == 1

    twice = reader.post(f"/errors/{error['id']}/replay/").json()
    assert twice["outcome"] == "already_replayed"
    assert twice["replayed_event"] == event["id"]
    bulk = reader.post("/errors/replay/").json()
    assert bulk == {"replayed": 0, "still_failing": 0, "skipped": 1}
    assert len(fetch_all(reader, "/events/")) == 1
    assert reader.get("/sessions/r/").json()["event_count"] == 1
    assert [e["id"] for e in fetch_all(reader, "/errors/", replayed="true")] == [error["id"]]
    assert reader.get("/stats/").json()["totals"]["errors"] == []
    assert_sessions_match_events(engine)
    assert_rollups_match_rows(engine)


def test_an_error_that_fails_again_keeps_its_record_with_the_new_reason(
    sender, processor, reader, creds, engine
):
    reader.patch(f"/applications/{creds.application_id}/", json={"strict": True})
    processor.checker.refresh(force=True)
    sender.post("/events/", json=make_event(event_id="e-1", data={"path": "x"}))
    processor.drain()
    error = only_error(reader)
    assert error["reason"] == "unknown_event_type"

    post_schema(reader, STRICT_PATH)
    replayed = reader.post(f"/errors/{error['id']}/replay/").json()
    assert replayed["outcome"] == "still_failing"
    assert replayed["id"] == error["id"]
    assert replayed["reason"] == "schema_violation"
    assert replayed["details"]["path"] == "$.data.path"
    assert replayed["replayed"] is False
    assert only_error(reader)["reason"] == "schema_violation"
    assert_rollups_match_rows(engine)


def test_an_error_deleted_while_it_is_replayed_answers_404(
    sender, processor, reader, engine, monkeypatch
):
    """Retention may delete the error between its replay and the look-up of the answer."""
    sender.post("/events/", json=make_event(event_id="e-1", data="not an object"))
    processor.drain()
    error = only_error(reader)
    replay_error = replay.replay_error

    def replay_then_delete(*args, **kwargs):
        outcome = replay_error(*args, **kwargs)
        with engine.begin() as conn:
            conn.execute(sa.delete(errors).where(errors.c.id == error["id"]))
        return outcome

    monkeypatch.setattr(replay, "replay_error", replay_then_delete)
    answer = reader.post(f"/errors/{error['id']}/replay/")
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["code"] == "not_found"


def test_whole_body_errors_are_not_replayable(sender, processor, reader):
    sender.post("/events/", content=b"{not json")
    processor.drain()
    error = only_error(reader)
    answer = reader.post(f"/errors/{error['id']}/replay/")
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "not_replayable"
    assert reader.post("/errors/replay/").json() == {
        "replayed": 0,
        "still_failing": 0,
        "skipped": 1,
    }
    assert reader.post("/errors/999999/replay/").status_code == 404


def test_replay_links_to_the_event_when_the_sender_already_sent_it_again(
    sender, processor, reader, engine
):
    post_schema(reader, STRICT_PATH)
    processor.checker.refresh(force=True)
    sender.post("/events/", json=make_event(session="r", event_id="e-1", data={"path": "x"}))
    processor.drain()
    sender.post("/events/", json=make_event(session="r", event_id="e-1", data={"path": "/x"}))
    processor.drain()
    (event,) = fetch_all(reader, "/events/")

    post_schema(reader, {"type": "object"})
    replayed = reader.post(f"/errors/{only_error(reader)['id']}/replay/").json()
    assert replayed["outcome"] == "replayed"
    assert replayed["replayed_event"] == event["id"]
    assert fetch_all(reader, "/events/") == [event]
    assert reader.get("/sessions/r/").json()["event_count"] == 1
    assert_rollups_match_rows(engine)


def test_bulk_replay_takes_the_filters_of_the_error_list(sender, processor, reader, engine):
    post_schema(reader, STRICT_PATH)
    processor.checker.refresh(force=True)
    sender.post(
        "/events/",
        json=[make_event(session=f"s-{i % 3}", data={"path": "x"}) for i in range(30)]
        + [make_event(data={})] * 5
        + [make_event(timestamp="2999-01-01T00:00:00Z")] * 4,
    )
    processor.drain()
    post_schema(reader, {"type": "object"})
    none = reader.post("/errors/replay/", params={"application": "nobody"}).json()
    assert none == {"replayed": 0, "still_failing": 0, "skipped": 0}
    counts = reader.post("/errors/replay/", params={"reason": "schema_violation"}).json()
    assert counts == {"replayed": 30, "still_failing": 0, "skipped": 0}
    rest = reader.post("/errors/replay/", params={"replayed": "false"}).json()
    assert rest == {"replayed": 0, "still_failing": 9, "skipped": 0}
    assert len(fetch_all(reader, "/events/")) == 30
    assert reader.get("/sessions/s-0/").json()["event_count"] == 10
    assert_sessions_match_events(engine)
    assert_rollups_match_rows(engine)


def test_replay_needs_an_admin_token(server, creds):
    headers = {"Authorization": f"Bearer {creds.read_token}"}
    with httpx.Client(base_url=server.url, headers=headers) as client:
        assert client.post("/errors/replay/").status_code == 403
        assert client.post("/errors/1/replay/").status_code == 403
