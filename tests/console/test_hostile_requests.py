"""Requests a page would never make, and data a sender chose to break pages with: each gets
a clear page, never a failure of the server."""

from __future__ import annotations

import re
from datetime import timedelta

from tests.console.conftest import signed_in_client
from tests.helpers import make_event
from tests.processes import wait_until
from the_eye.store.replay_jobs import create_job
from the_eye.store.tables import replay_jobs
from the_eye.timestamps import utcnow


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_a_payload_nested_too_deep_to_parse_is_shown_as_kept(console):
    # A body any write key may send: kept as an `invalid_json` error record.
    answer = console.sender.post(
        "/events/", content=b"[" * 100_000, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 400
    with signed_in_client(console) as browser:
        errors = wait_until(lambda: console.api.get("/errors/").json()["results"])
        page = browser.get(f"/console/errors/{errors[0]['id']}/")
        assert page.status_code == 200
        assert "[[[[" in page.text


def test_forms_holding_json_nested_too_deep_are_refused_in_the_page(console):
    assert console.sender.post("/events/", json=[make_event(event_id="e")]).status_code == 202
    (event,) = wait_until(lambda: console.api.get("/events/").json()["results"])
    deep = "[" * 100_000
    with signed_in_client(console) as browser:
        page = browser.get(f"/console/events/{event['id']}/").text
        edit = browser.post(
            f"/console/events/{event['id']}/edit/",
            data={"event": deep, "csrf_token": csrf_of(page)},
        )
        assert edit.status_code == 400 and "not valid JSON" in edit.text
        dry_run = browser.post(
            "/console/types/schema/dry-run/",
            data={
                "category": "page interaction",
                "name": "pageview",
                "draft": deep,
                "limit": "1000",
                "csrf_token": csrf_of(page),
            },
        )
        assert dry_run.status_code < 500 and "nested too deeply" in dry_run.text


def test_out_of_range_numbers_in_paths_and_queries_are_clear_pages(console):
    with signed_in_client(console) as browser:
        for path in (
            "/console/errors/99999999999999999999/",
            "/console/events/99999999999999999999/",
            "/console/events/?limit=%C2%B2",
            "/console/sessions/s-1/?limit=%C2%B2",
        ):
            answer = browser.get(path)
            assert answer.status_code in (400, 404), path
            assert answer.headers["content-type"].startswith("text/html"), path


def test_session_links_reach_sessions_whatever_their_id(console):
    events = [make_event(session="..", event_id="dots"), make_event(session="a\nb", event_id="nl")]
    events += [{**make_event(session="..", event_id="bad"), "timestamp": "never"}]
    assert console.sender.post("/events/", json=events).status_code == 202
    wait_until(lambda: len(console.api.get("/events/").json()["results"]) == 2)
    with signed_in_client(console) as browser:
        for page in ("/console/live/", "/console/errors/", "/console/events/"):
            links = set(re.findall(r'href="(/console/sessions/[^"]*)"', browser.get(page).text))
            assert links, page
            for link in links:
                target = browser.get(link.replace("&amp;", "&"))
                assert target.status_code == 200, (page, link)
                assert "Session" in target.text


def test_a_bulk_replay_sent_twice_runs_once(console):
    with console.engine.begin() as conn:
        running = create_job(conn, {}, "someone")
    with signed_in_client(console) as browser:
        csrf = csrf_of(browser.get("/console/errors/").text)
        answer = browser.post("/console/errors/replay/", data={"csrf_token": csrf})
        assert answer.status_code == 303
        assert answer.headers["location"] == f"/console/errors/replay/{running}/"


def test_a_replay_whose_process_stopped_says_so_and_stops_polling(console):
    with console.engine.begin() as conn:
        job = create_job(conn, {}, "someone")
        conn.execute(
            replay_jobs.update()
            .where(replay_jobs.c.id == job)
            .values(updated_at=utcnow() - timedelta(minutes=3))
        )
    with signed_in_client(console) as browser:
        page = browser.get(f"/console/errors/replay/{job}/", headers={"HX-Request": "true"})
        assert "the process running this replay stopped" in page.text
        assert "hx-trigger" not in page.text
        # A new replay starts, since that one runs no more.
        csrf = csrf_of(browser.get("/console/errors/").text)
        answer = browser.post("/console/errors/replay/", data={"csrf_token": csrf})
        assert answer.headers["location"] != f"/console/errors/replay/{job}/"
