"""`POST /errors/{id}/replay/` and `POST /errors/replay/`: fixed errors become events, once."""

from __future__ import annotations

import sqlalchemy as sa

from tests.consistency import assert_rollups_match_rows, assert_sessions_match_events
from tests.helpers import fetch_all, make_event, post_schema
from the_eye.services import replay
from the_eye.store.tables import errors

STRICT_PATH = {"type": "object", "required": ["path"], "properties": {"path": {"pattern": "^/"}}}


def only_error(admin) -> dict:
    (error,) = fetch_all(admin, "/errors/")
    return error


def test_a_fixed_error_becomes_exactly_one_event_and_replaying_twice_stores_once(
    sender, processor, admin, engine
):
    assert post_schema(admin, STRICT_PATH).status_code == 201
    processor.checker.refresh(force=True)
    sender.post("/events/", json=make_event(session="r", event_id="e-1", data={"path": "x"}))
    processor.drain()
    error = only_error(admin)
    assert error["reason"] == "schema_violation"

    # The rule is unchanged: the error stays, with the version that was applied.
    again = admin.post(f"/errors/{error['id']}/replay/")
    assert again.status_code == 200, again.text
    assert again.json()["outcome"] == "still_failing"
    assert again.json()["details"]["schema_version"] == 1

    assert post_schema(admin, {"type": "object", "required": ["path"]}).status_code == 201
    fixed = admin.post(f"/errors/{error['id']}/replay/").json()
    assert fixed["outcome"] == "replayed" and fixed["replayed"] is True
    (event,) = fetch_all(admin, "/events/")
    assert fixed["replayed_event"] == event["id"]
    assert event["event_id"] == "e-1"
    assert event["received_at"] == error["received_at"]
    assert admin.get("/sessions/r/").json()["event_count"] == 1

    twice = admin.post(f"/errors/{error['id']}/replay/").json()
    assert twice["outcome"] == "already_replayed"
    assert twice["replayed_event"] == event["id"]
    bulk = admin.post("/errors/replay/").json()
    assert bulk == {"replayed": 0, "still_failing": 0, "skipped": 1}
    assert len(fetch_all(admin, "/events/")) == 1
    assert admin.get("/sessions/r/").json()["event_count"] == 1
    assert [e["id"] for e in fetch_all(admin, "/errors/", replayed="true")] == [error["id"]]
    assert admin.get("/stats/").json()["totals"]["errors"] == []
    assert_sessions_match_events(engine)
    assert_rollups_match_rows(engine)


def test_an_error_that_fails_again_keeps_its_record_with_the_new_reason(
    sender, processor, admin, creds, engine
):
    admin.patch(f"/applications/{creds.application_id}/", json={"strict": True})
    processor.checker.refresh(force=True)
    sender.post("/events/", json=make_event(event_id="e-1", data={"path": "x"}))
    processor.drain()
    error = only_error(admin)
    assert error["reason"] == "unknown_event_type"

    assert post_schema(admin, STRICT_PATH).status_code == 201
    replayed = admin.post(f"/errors/{error['id']}/replay/").json()
    assert replayed["outcome"] == "still_failing"
    assert replayed["id"] == error["id"]
    assert replayed["reason"] == "schema_violation"
    assert replayed["details"]["path"] == "$.data.path"
    assert replayed["replayed"] is False
    assert only_error(admin)["reason"] == "schema_violation"
    assert_rollups_match_rows(engine)


def test_an_error_deleted_while_it_is_replayed_answers_404(
    sender, processor, admin, engine, monkeypatch
):
    """Retention may delete the error between its replay and the look-up of the answer."""
    sender.post("/events/", json=make_event(event_id="e-1", data="not an object"))
    processor.drain()
    error = only_error(admin)
    replay_error = replay.replay_error

    def replay_then_delete(*args, **kwargs):
        outcome = replay_error(*args, **kwargs)
        with engine.begin() as conn:
            conn.execute(sa.delete(errors).where(errors.c.id == error["id"]))
        return outcome

    monkeypatch.setattr(replay, "replay_error", replay_then_delete)
    answer = admin.post(f"/errors/{error['id']}/replay/")
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["code"] == "not_found"


def test_whole_body_errors_are_not_replayable(sender, processor, admin):
    sender.post("/events/", content=b"{not json")
    processor.drain()
    error = only_error(admin)
    answer = admin.post(f"/errors/{error['id']}/replay/")
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "not_replayable"
    assert admin.post("/errors/replay/").json() == {
        "replayed": 0,
        "still_failing": 0,
        "skipped": 1,
    }
    assert admin.post("/errors/999999/replay/").status_code == 404


def test_replay_links_to_the_event_when_the_sender_already_sent_it_again(
    sender, processor, admin, engine
):
    assert post_schema(admin, STRICT_PATH).status_code == 201
    processor.checker.refresh(force=True)
    sender.post("/events/", json=make_event(session="r", event_id="e-1", data={"path": "x"}))
    processor.drain()
    sender.post("/events/", json=make_event(session="r", event_id="e-1", data={"path": "/x"}))
    processor.drain()
    (event,) = fetch_all(admin, "/events/")

    assert post_schema(admin, {"type": "object"}).status_code == 201
    replayed = admin.post(f"/errors/{only_error(admin)['id']}/replay/").json()
    assert replayed["outcome"] == "replayed"
    assert replayed["replayed_event"] == event["id"]
    assert fetch_all(admin, "/events/") == [event]
    assert admin.get("/sessions/r/").json()["event_count"] == 1
    assert_rollups_match_rows(engine)


def test_bulk_replay_takes_the_filters_of_the_error_list(sender, processor, admin, engine):
    assert post_schema(admin, STRICT_PATH).status_code == 201
    processor.checker.refresh(force=True)
    sender.post(
        "/events/",
        json=[make_event(session=f"s-{i % 3}", data={"path": "x"}) for i in range(30)]
        + [make_event(data={})] * 5
        + [make_event(timestamp="2999-01-01T00:00:00Z")] * 4,
    )
    processor.drain()
    assert post_schema(admin, {"type": "object"}).status_code == 201
    none = admin.post("/errors/replay/", params={"application": "nobody"}).json()
    assert none == {"replayed": 0, "still_failing": 0, "skipped": 0}
    counts = admin.post("/errors/replay/", params={"reason": "schema_violation"}).json()
    assert counts == {"replayed": 30, "still_failing": 0, "skipped": 0}
    rest = admin.post("/errors/replay/", params={"replayed": "false"}).json()
    assert rest == {"replayed": 0, "still_failing": 9, "skipped": 0}
    assert len(fetch_all(admin, "/events/")) == 30
    assert admin.get("/sessions/s-0/").json()["event_count"] == 10
    assert_sessions_match_events(engine)
    assert_rollups_match_rows(engine)


def test_replay_needs_an_admin_token(reader):
    assert reader.post("/errors/replay/").status_code == 403
    assert reader.post("/errors/1/replay/").status_code == 403
