"""`/schemas/` and strict applications over HTTP, with the processor applying them."""

from __future__ import annotations

import threading

import httpx
import pytest

from tests.helpers import PATH_SCHEMA, fetch_all, make_event, post_schema, seed_pageviews
from tests.processes import wait_until
from the_eye.processor.worker import Processor

PAGEVIEW = {
    "type": "object",
    "required": ["host", "path"],
    "properties": {"path": {"type": "string", "pattern": "^/"}},
}


def test_a_new_version_supersedes_the_old_one(admin):
    first = post_schema(admin, PAGEVIEW)
    assert first.status_code == 201, first.text
    assert first.json()["version"] == 1
    second = post_schema(admin, {"type": "object", "required": ["host"]})
    assert second.json()["version"] == 2
    post_schema(admin, {"type": "object"}, "form interaction", "submit")

    listed = admin.get("/schemas/").json()["results"]
    assert [(s["category"], s["name"], s["version"]) for s in listed] == [
        ("form interaction", "submit", 1),
        ("page interaction", "pageview", 2),
    ]
    versions = admin.get("/schemas/page interaction/pageview/").json()["results"]
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[1]["schema"] == PAGEVIEW
    assert versions[0]["source"] == "api" and versions[0]["created_at"].endswith("Z")
    assert admin.get("/schemas/page interaction/nothing/").status_code == 404


def test_an_invalid_schema_is_400_with_the_reason(admin):
    answer = post_schema(admin, {"type": "objekt"})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "invalid_schema"
    assert "objekt" in error["message"]
    assert error["details"]["path"] == "$.type"
    assert post_schema(admin, 5).json()["error"]["code"] == "invalid_request"
    assert admin.post("/schemas/", json={"category": "c", "schema": {}}).status_code == 400
    assert admin.get("/schemas/").json()["results"] == []


def test_reading_schemas_needs_a_read_token_and_writing_an_admin_one(server, reader, admin):
    post_schema(admin, PAGEVIEW)
    assert reader.get("/schemas/").status_code == 200
    assert reader.get("/schemas/page interaction/pageview/").status_code == 200
    assert post_schema(reader, PAGEVIEW).status_code == 403
    assert httpx.get(f"{server.url}/schemas/").status_code == 401


def test_the_processor_applies_the_newest_version(sender, processor, admin):
    post_schema(admin, PAGEVIEW)
    processor.checker.refresh(force=True)
    sender.post("/events/", json=make_event(event_id="bad", data={"host": "h", "path": "x"}))
    sender.post("/events/", json=make_event(event_id="good", data={"host": "h", "path": "/x"}))
    processor.drain()
    assert [e["event_id"] for e in fetch_all(admin, "/events/")] == ["good"]
    (error,) = fetch_all(admin, "/errors/", reason="schema_violation")
    assert error["event_id"] == "bad"
    assert error["details"] == {
        "field": "data",
        "path": "$.data.path",
        "rule": "pattern",
        "schema_path": "#/properties/path/pattern",
        "schema_version": 1,
    }


def test_a_running_processor_picks_up_a_new_version_within_seconds(sender, settings, admin):
    processor = Processor.from_settings(settings.model_copy(update={"schema_refresh_seconds": 0.2}))
    stop = threading.Event()
    loop = threading.Thread(target=processor.run, args=(stop, 0.01))
    loop.start()
    try:
        sender.post("/events/", json=make_event(event_id="before", data={"host": "h"}))
        wait_until(lambda: fetch_all(admin, "/events/"), timeout=10)
        post_schema(admin, PAGEVIEW)
        sent = iter(range(1000))

        def violated() -> list:
            event = make_event(event_id=f"after-{next(sent)}", data={"host": "h"})
            sender.post("/events/", json=event)
            return fetch_all(admin, "/errors/")

        # The running processor applies the new version within a few seconds of its post.
        errors = wait_until(violated, timeout=3, interval=0.05)
        assert {e["reason"] for e in errors} == {"schema_violation"}
    finally:
        stop.set()
        loop.join()
        processor.close()


def test_strict_mode_turns_unknown_types_into_errors(sender, processor, admin, creds):
    post_schema(admin, {"type": "object"}, "form interaction", "submit")
    changed = admin.patch(f"/applications/{creds.application_id}/", json={"strict": True})
    assert changed.status_code == 200 and changed.json()["strict"] is True
    listed = admin.get("/applications/").json()["results"]
    assert listed[0]["strict"] is True
    processor.checker.refresh(force=True)

    sender.post(
        "/events/",
        json=[
            make_event(event_id="unknown"),
            make_event(event_id="known", category="form interaction", name="submit"),
            # The other checks come first: a bad timestamp is reported as such.
            make_event(event_id="bad-time", timestamp="someday"),
        ],
    )
    processor.drain()
    assert [e["event_id"] for e in fetch_all(admin, "/events/")] == ["known"]
    reasons = {e["event_id"]: e["reason"] for e in fetch_all(admin, "/errors/")}
    assert reasons == {"unknown": "unknown_event_type", "bad-time": "invalid_timestamp"}

    admin.patch(f"/applications/{creds.application_id}/", json={"strict": False})
    processor.checker.refresh(force=True)
    sender.post("/events/", json=make_event(event_id="unknown-2"))
    processor.drain()
    assert "unknown-2" in [e["event_id"] for e in fetch_all(admin, "/events/")]


def test_strict_flag_at_creation_and_bad_patches(admin):
    created = admin.post("/applications/", json={"name": "strict-app", "strict": True}).json()
    assert created["strict"] is True
    assert admin.patch(f"/applications/{created['id']}/", json={"strict": "yes"}).status_code == 400
    assert admin.patch("/applications/9999/", json={"strict": True}).status_code == 404


def post_raw(client, schema_text: str):
    body = '{"category": "page interaction", "name": "pageview", "schema": ' + schema_text + "}"
    return client.post("/schemas/", content=body, headers={"Content-Type": "application/json"})


def test_schemas_the_store_would_change_or_refuse_are_400(admin):
    post_schema(admin, {"type": "object", "required": ["host"]})
    for text, path in [
        ('{"type": "object", "properties": {"n": {"maximum": 1e400}}}', "$.properties.n.maximum"),
        ('{"type": "object", "properties": {"n": {"minimum": NaN}}}', "$.properties.n.minimum"),
        ('{"type": "object", "properties": {"n": {"maximum": 2361183241434822606848}}}', None),
        ('{"type": "object", "properties": {"n": {"minimum": -Infinity}}}', None),
    ]:
        answer = post_raw(admin, text)
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["code"] == "invalid_schema"
        assert error["details"]["path"] == (path or error["details"]["path"])
        assert error["details"]["path"].startswith("$.properties.n.")
    # The type keeps its rules: the first version is still the one in force.
    (in_force,) = admin.get("/schemas/").json()["results"]
    assert in_force["version"] == 1 and in_force["schema"]["required"] == ["host"]


def test_a_schema_with_a_remote_ref_or_a_backtracking_only_pattern_is_400(admin):
    answer = post_schema(admin, {"properties": {"a": {"$ref": "http://127.0.0.1:1/s.json"}}})
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_schema"
    assert "http://127.0.0.1:1/s.json" in answer.json()["error"]["message"]
    answer = post_schema(admin, {"properties": {"a": {"pattern": "(x+)\\1"}}})
    assert answer.status_code == 400
    assert "RE2" in answer.json()["error"]["message"]
    assert admin.get("/schemas/").json()["results"] == []


def test_a_recursive_schema_on_a_deep_event_is_that_events_error(sender, processor, admin):
    recursive = {
        "$defs": {"node": {"type": "object", "additionalProperties": {"$ref": "#/$defs/node"}}},
        "$ref": "#/$defs/node",
    }
    assert post_schema(admin, recursive).status_code == 201
    processor.checker.refresh(force=True)
    deep: dict = {}
    for _ in range(300):
        deep = {"a": deep}
    sender.post(
        "/events/",
        json=[make_event(event_id="deep", data=deep), make_event(event_id="flat", data={"a": {}})],
    )
    processor.drain()
    assert [e["event_id"] for e in fetch_all(admin, "/events/")] == ["flat"]
    (error,) = fetch_all(admin, "/errors/")
    assert error["event_id"] == "deep"
    assert error["reason"] == "check_budget_exceeded"
    assert error["details"]["limit"] == 64


def dry_run(client: httpx.Client, schema, **fields) -> httpx.Response:
    body = {"category": "page interaction", "name": "pageview", "schema": schema, **fields}
    return client.post("/schemas/dry-run/", json=body)


def test_a_dry_run_answers_what_would_pass_and_fail_with_a_read_token(
    sender, processor, engine, reader, admin, server
):
    ids = seed_pageviews(sender, processor, engine)
    answer = dry_run(reader, PATH_SCHEMA)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["category"], body["name"], body["version"], body["limit"]) == (
        "page interaction",
        "pageview",
        2,
        1000,
    )
    events, errors = body["events"], body["errors"]
    assert (events["checked"], events["would_pass"], events["would_fail"]) == (10, 6, 4)
    assert [(e["id"], e["reason"], e["path"]) for e in events["examples"]] == [
        (ids[key], "schema_violation", "$.data.path")
        for key in ("bad-path", "no-path-2", "no-path-1", "no-path-0")
    ]
    assert (errors["checked"], errors["would_pass"], errors["would_fail"]) == (7, 4, 3)
    assert [(e["id"], e["reason"], e["path"]) for e in errors["examples"]] == [
        (ids["err-future"], "future_timestamp", "$.timestamp"),
        (ids["err-no-path-1"], "schema_violation", "$.data.path"),
        (ids["err-no-path-0"], "schema_violation", "$.data.path"),
    ]
    limited = dry_run(reader, PATH_SCHEMA, limit=2).json()
    assert (limited["limit"], limited["events"]["checked"], limited["errors"]["checked"]) == (
        2,
        2,
        2,
    )
    # Nothing changed: version 1 is still the one in force.
    (in_force,) = admin.get("/schemas/").json()["results"]
    assert in_force["version"] == 1
    assert httpx.post(f"{server.url}/schemas/dry-run/", json={}).status_code == 401


def test_a_dry_run_of_an_invalid_schema_or_limit_is_400(reader):
    refused = dry_run(reader, {"type": "objekt"})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_schema"
    assert refused.json()["error"]["details"]["path"] == "$.type"
    for limit in (0, 10_001, "many"):
        answer = dry_run(reader, PATH_SCHEMA, limit=limit)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "invalid_request"
    assert dry_run(reader, PATH_SCHEMA, limit=10_000).status_code == 200


def test_a_version_registered_while_a_processor_commits_waits_for_it(admin, settings, engine):
    """The registration reads the newest version, then writes the next. A processor's write
    committed in between (here: a connection holding SQLite's write lock, then committing)
    makes it wait for the lock, not fail with 503."""
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite's one writer")
    blocker = engine.raw_connection()
    blocker.execute("BEGIN IMMEDIATE")
    blocker.execute("UPDATE counters SET value = value + 1 WHERE name = 'stored'")
    answers: list[httpx.Response] = []
    registering = threading.Thread(
        target=lambda: answers.append(post_schema(admin, {"type": "object"}, "c", "n"))
    )
    registering.start()
    try:
        registering.join(timeout=0.5)  # the request reaches the store meanwhile
    finally:
        blocker.commit()
        blocker.close()
    registering.join(timeout=30)
    assert [a.status_code for a in answers] == [201]
