"""The console's errors in a real browser: an invalid event found with the list's filters, its
failing path marked on its page, replayed from there once its schema is relaxed; a bulk
replay's progress; nothing a sender wrote runs; a read-scope user cannot replay."""

from __future__ import annotations

import json
import re
import uuid

from tests.console.conftest import shoot, sign_in
from tests.helpers import fetch_all, make_event, post_schema
from tests.processes import wait_until

PATH_IS_TEXT = {"type": "object", "properties": {"path": {"type": "string"}}}
RELAXED = {"type": "object"}


def schema_in_force(console, schema, category="page interaction", name="pageview") -> None:
    """Register `schema` and wait until the processor refuses an event it forbids (it looks
    for new versions every few seconds)."""
    assert post_schema(console.api, schema, category, name).status_code == 201
    probe = f"probe-{uuid.uuid4().hex}"

    def refused() -> bool:
        event = make_event(probe, category=category, name=name, data={"path": 1})
        assert console.sender.post("/events/", json=event).status_code == 202
        return bool(wait_for_errors(console, session=probe))

    wait_until(refused, timeout=30, interval=0.5)


def wait_for_errors(console, count: int = 1, **filters) -> list[dict]:
    """The errors the filters match, once there are at least `count` (empty if none came)."""
    try:
        return wait_until(
            lambda: (
                (found := fetch_all(console.api, "/errors/", **filters))
                and len(found) >= count
                and found
            ),
            timeout=10,
        )
    except AssertionError:
        return []


def test_an_invalid_event_is_found_marked_and_replayed_from_its_page(console, page):
    schema_in_force(console, PATH_IS_TEXT)
    bad = make_event("visitor-7", event_id="bad-1", data={"host": "h", "path": 5})
    other = make_event("visitor-8", event_id="other-1", data={})  # invalid_data, elsewhere
    assert console.sender.post("/events/", json=[bad, other]).status_code == 202
    (error,) = wait_for_errors(console, session="visitor-7")
    assert wait_for_errors(console, session="visitor-8")

    sign_in(page, console)
    page.get_by_role("link", name="Errors", exact=True).click()
    page.get_by_label("Session", exact=True).fill("visitor-7")
    page.get_by_label("Reason", exact=True).select_option("schema_violation")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"session=visitor-7"))
    rows = page.get_by_test_id("errors").locator("tbody tr")
    assert rows.count() == 1
    row = rows.first
    assert "schema_violation" in row.inner_text()
    assert "page interaction / pageview" in row.inner_text()
    assert row.get_by_role("link", name="visitor-7").get_attribute("href") == (
        "/console/sessions/visitor-7/"
    )
    counts = page.get_by_test_id("by-reason").inner_text()
    assert re.search(r"schema_violation\s+\d", counts) and "invalid_data" in counts
    shoot(page, "errors")

    page.get_by_label("Category", exact=True).fill(
        "form interaction"
    )  # no such error: nothing listed
    page.get_by_role("button", name="Filter").click()
    assert "No errors match these filters." in page.get_by_test_id("errors").inner_text()
    page.go_back()

    page.get_by_role("link", name=f"Error {error['id']}").click()
    assert page.get_by_test_id("failing-path").inner_text() == "$.data.path"
    marked = page.get_by_test_id("payload").locator("mark")
    assert marked.all_inner_texts() == ['"path": 5']
    shoot(page, "error")

    assert post_schema(console.api, RELAXED).status_code == 201
    page.get_by_role("button", name="Replay").click()
    assert page.get_by_test_id("outcome").inner_text().startswith("Replayed")
    (event,) = fetch_all(console.api, "/events/", session="visitor-7")
    assert event["event_id"] == "bad-1"
    link = page.get_by_role("link", name=f"event {event['id']}")
    assert link.get_attribute("href") == f"/console/events/{event['id']}/"
    assert page.get_by_role("button", name="Replay").count() == 0  # replayed: nothing to do


def test_the_list_and_an_error_read_well_on_a_phone(console, narrow_page):
    bad = make_event("visitor-9", data={"host": "www.consumeraffairs.com", "path": []})
    schema_in_force(console, PATH_IS_TEXT)
    assert console.sender.post("/events/", json=bad).status_code == 202
    (error,) = wait_for_errors(console, session="visitor-9")
    sign_in(narrow_page, console)
    narrow_page.goto(console.url + "/console/errors/")
    shoot(narrow_page, "errors-narrow")
    narrow_page.goto(f"{console.url}/console/errors/{error['id']}/")
    assert narrow_page.get_by_test_id("payload").locator("mark").count() == 1
    width = narrow_page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways: {width} px"
    shoot(narrow_page, "error-narrow")


def test_a_bulk_replay_shows_its_progress_and_ends_with_the_counts(console, page):
    schema_in_force(console, PATH_IS_TEXT)
    fixable = [make_event("bulk", event_id=f"b-{i}", data={"path": i}) for i in range(1200)]
    broken = [make_event("bulk", event_id=f"x-{i}", data={}) for i in range(3)]
    assert console.sender.post("/events/", json=fixable + broken).status_code == 202
    assert console.sender.post("/events/", content=b"{not json").status_code == 400
    assert len(wait_for_errors(console, 1203, session="bulk")) == 1203
    assert post_schema(console.api, RELAXED).status_code == 201

    sign_in(page, console)
    page.goto(console.url + "/console/errors/?session=bulk")
    page.get_by_role("button", name="Replay matching errors").click()
    page.wait_for_url(re.compile(r"/console/errors/replay/[0-9a-f]{32}/$"))
    # htmx asks for the progress every second until the job is finished.
    page.get_by_text("Finished: 1203 of 1203 errors gone through.").wait_for(timeout=60_000)
    assert page.get_by_test_id("replayed").inner_text() == "1200"
    assert page.get_by_test_id("still-failing").inner_text() == "3"
    assert page.get_by_test_id("skipped").inner_text() == "0"
    assert page.locator("progress").get_attribute("value") == "1203"
    shoot(page, "errors-replay")
    assert len(fetch_all(console.api, "/events/", session="bulk")) == 1200
    # Only what the filters matched: the whole-body error is still open, not skipped.
    (body,) = fetch_all(console.api, "/errors/", reason="invalid_json")
    assert body["replayed"] is False


def test_nothing_a_sender_wrote_runs_in_the_errors_pages(console, page):
    hostile = "<img src=x onerror=\"document.title='owned'\">"
    script = "<script>document.title='owned'</script>"
    event = make_event(hostile, category=script, name=hostile, data={script: hostile})
    event["timestamp"] = "not a time"
    assert console.sender.post("/events/", json=event).status_code == 202
    (error,) = wait_for_errors(console, session=hostile)
    sign_in(page, console)
    page.goto(console.url + "/console/errors/")
    assert page.get_by_role("link", name=hostile).count() == 1  # the session, as text
    page.goto(f"{console.url}/console/errors/{error['id']}/")
    assert script in page.get_by_test_id("payload").inner_text()
    assert page.get_by_test_id("payload").locator("mark").inner_text() == (
        '"timestamp": "not a time"'
    )
    assert page.title() != "owned"
    assert page.locator("img[src=x]").count() == 0 and page.locator("main script").count() == 0


def test_a_read_scope_user_sees_no_replay_and_a_forged_one_is_refused(console, page):
    assert console.sender.post("/events/", json=make_event("r", data={})).status_code == 202
    (error,) = wait_for_errors(console, session="r")
    sign_in(page, console, console.read_token)
    page.goto(console.url + "/console/errors/")
    assert page.get_by_test_id("errors").locator("tbody tr").count() == 1
    assert page.get_by_role("button", name=re.compile("Replay")).count() == 0
    page.goto(f"{console.url}/console/errors/{error['id']}/")
    assert page.get_by_role("button", name="Replay").count() == 0
    # With the session's own CSRF token: the scope alone refuses.
    csrf = json.loads(page.locator("body").get_attribute("hx-headers") or "{}")["X-CSRF-Token"]
    for path in (f"/console/errors/{error['id']}/replay/", "/console/errors/replay/"):
        forged = page.request.post(console.url + path, form={"csrf_token": csrf})
        assert forged.status == 403, path
    assert fetch_all(console.api, "/errors/", replayed="false") == [error]


def test_a_filter_that_does_not_parse_is_said_in_the_page(console, page):
    sign_in(page, console)
    answer = page.goto(console.url + "/console/errors/?received_at__gte=yesterday&name=pageview")
    assert answer is not None and answer.status == 400
    assert "ISO 8601" in page.get_by_role("alert").inner_text()
    assert page.get_by_label("Name", exact=True).input_value() == "pageview"  # kept to fix
    assert page.get_by_role("button", name=re.compile("Replay")).count() == 0
