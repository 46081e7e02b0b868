"""The event explorer and the event page in a real browser: filters, keyset paging without a
row repeated or missed, editing through the checks of a new event, deleting after a
confirmation, read-scope users kept from changes, and a sender's markup shown as text."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

from tests.console.conftest import shoot, sign_in, store_events
from tests.helpers import make_event, post_schema
from the_eye.timestamps import format_timestamp

START = datetime(2021, 1, 1, 9, 0, 0)
SCRIPT = "<script>window.owned = 1; document.title = 'owned'</script>"
IMG = "<img src=x onerror=\"window.owned = 1; document.title = 'owned'\">"


def at(seconds: float) -> str:
    return format_timestamp(START + timedelta(seconds=seconds))


def shown_ids(page) -> list[int]:
    return [
        int(i)
        for i in page.locator("tbody tr[data-event-id]").evaluate_all(
            "rows => rows.map(row => row.dataset.eventId)"
        )
    ]


def test_the_explorer_walks_every_page_once_in_either_order(console, page):
    walk = [
        make_event("walk", name="pageview" if i % 2 else "click", timestamp=at(i))
        for i in range(60)
    ]
    # Two events at the same instant: the keyset's id breaks the tie across a page border.
    walk[25]["timestamp"] = walk[24]["timestamp"]
    others = [make_event("other", category="form interaction", name="submit") for _ in range(5)]
    stored = store_events(console, walk + others)
    walked = [e["id"] for e in stored if e["session_id"] == "walk"]

    sign_in(page, console)
    page.goto(console.url + "/console/events/")
    page.get_by_label("Session").fill("walk")
    page.get_by_label("Order").select_option(label="Oldest first")
    page.get_by_label("Rows per page").select_option("25")
    page.get_by_role("button", name="Filter").click()
    seen: list[int] = []
    sizes = []
    while True:
        ids = shown_ids(page)
        seen += ids
        sizes.append(len(ids))
        following = page.get_by_role("link", name="Next page →")
        if not following.count():
            break
        following.click()
    assert sizes == [25, 25, 10]
    assert seen == walked  # each once, oldest first

    page.get_by_role("link", name="← First page").click()
    page.get_by_label("Order").select_option(label="Newest first")
    page.get_by_role("button", name="Filter").click()
    newest: list[int] = []
    while True:
        newest += shown_ids(page)
        following = page.get_by_role("link", name="Next page →")
        if not following.count():
            break
        following.click()
    assert newest == walked[::-1]
    assert page.get_by_text("No more rows.").is_visible()


def test_the_explorer_filters_by_type_time_and_application(console, page):
    events = [
        make_event("s-filter", name="pageview" if i % 2 else "click", timestamp=at(i))
        for i in range(30)
    ]
    events += [make_event("s-form", category="form interaction", name="submit", timestamp=at(5))]
    stored = store_events(console, events)
    sign_in(page, console)
    page.goto(console.url + "/console/events/")
    assert len(shown_ids(page)) == 31
    shoot(page, "events")

    page.get_by_label("Category").fill("form interaction")
    page.get_by_role("button", name="Filter").click()
    (only,) = shown_ids(page)
    assert only == next(e["id"] for e in stored if e["session_id"] == "s-form")
    assert page.get_by_role("cell", name="submit").is_visible()

    page.get_by_label("Category").fill("page interaction")
    page.get_by_label("Name").fill("click")
    page.get_by_label("From (UTC)").fill("2021-01-01 09:00:10")
    page.get_by_label("To (UTC)").fill("2021-01-01T09:00:19Z")
    page.get_by_role("button", name="Filter").click()
    expected = [
        e["id"] for e in stored if e["name"] == "click" and at(10) <= e["timestamp"] <= at(19)
    ]
    assert len(expected) == 5
    assert shown_ids(page) == expected[::-1]

    page.get_by_label("Application").select_option("web")
    page.get_by_role("button", name="Filter").click()
    assert shown_ids(page) == expected[::-1]
    assert page.url.count("application=web") == 1

    # A filter the list cannot read is said in the page, the form kept as typed.
    page.get_by_label("From (UTC)").fill("yesterday")
    with page.expect_response(re.compile(r"/console/events/\?")) as answer:
        page.get_by_role("button", name="Filter").click()
    assert answer.value.status == 400
    assert answer.value.headers["content-type"].startswith("text/html")
    alert = page.get_by_test_id("filter-problem")
    assert "`timestamp__gte` must be an ISO 8601 date and time" in alert.inner_text()
    assert page.get_by_label("From (UTC)").input_value() == "yesterday"
    shoot(page, "events-invalid-filter")
    page.goto(console.url + "/console/events/?cursor=forged")
    assert "not valid for this list" in page.get_by_test_id("filter-problem").inner_text()


def test_the_explorer_and_an_event_are_readable_at_390_pixels(console, narrow_page):
    stored = store_events(console, [make_event("narrow", timestamp=at(i)) for i in range(3)])
    sign_in(narrow_page, console)
    narrow_page.goto(console.url + "/console/events/")
    assert len(shown_ids(narrow_page)) == 3
    # Tables scroll inside their card; the page itself does not grow sideways.
    assert narrow_page.evaluate("document.documentElement.scrollWidth") <= 390
    shoot(narrow_page, "events-narrow")
    narrow_page.get_by_role("link", name=f"Event {stored[0]['id']},").click()
    assert narrow_page.get_by_label("The event as JSON").is_visible()
    assert narrow_page.evaluate("document.documentElement.scrollWidth") <= 390
    shoot(narrow_page, "event-narrow")


def test_the_event_page_shows_every_field_and_links_to_its_session_and_type(console, page):
    (event,) = store_events(console, [make_event("s-one", event_id="one", timestamp=at(0))])
    sign_in(page, console)
    page.goto(console.url + "/console/events/")
    page.get_by_role("link", name=f"Event {event['id']},").click()
    page.wait_for_url(re.compile(rf"/console/events/{event['id']}/$"))
    for value in ("one", "web", "s-one", "page interaction", "pageview", event["timestamp"]):
        assert page.locator("dl.facts dd").get_by_text(value, exact=True).count() == 1, value
    data = page.get_by_label("The event's data").inner_text()
    assert json.loads(data) == event["data"]
    shoot(page, "event")

    page.get_by_role("link", name="Events of this type").click()
    assert page.get_by_label("Category").input_value() == "page interaction"
    assert page.get_by_label("Name").input_value() == "pageview"
    assert shown_ids(page) == [event["id"]]
    page.go_back()
    page.get_by_role("link", name="The session's timeline").click()
    page.wait_for_url(re.compile(r"/console/sessions/s-one/$"))


def test_an_admin_edits_an_event_and_a_failing_edit_says_why(console, page):
    (event,) = store_events(console, [make_event("s-edit", timestamp=at(0))])
    sign_in(page, console)
    page.goto(f"{console.url}/console/events/{event['id']}/")
    editor = page.get_by_label("The event as JSON")
    fields = json.loads(editor.input_value())
    assert fields["name"] == "pageview" and fields["data"] == event["data"]

    editor.fill(json.dumps({**fields, "name": "renamed", "session_id": "s-moved"}))
    page.get_by_role("button", name="Save").click()
    assert page.get_by_role("status").inner_text() == "Event saved."
    changed = console.api.get(f"/events/{event['id']}/").json()
    assert (changed["name"], changed["session_id"]) == ("renamed", "s-moved")
    assert console.api.get("/sessions/s-edit/").json()["event_count"] == 0
    assert console.api.get("/sessions/s-moved/").json()["event_count"] == 1

    future = json.dumps({"timestamp": "2999-01-01T00:00:00Z"})
    editor.fill(future)
    page.get_by_role("button", name="Save").click()
    problem = page.get_by_test_id("edit-problem")
    assert problem.inner_text().startswith("future_timestamp:")
    assert page.get_by_label("The event as JSON").input_value() == future  # kept as typed
    assert console.api.get(f"/events/{event['id']}/").json() == changed

    post_schema(console.api, {"type": "object", "required": ["path"]}, name="renamed")
    page.get_by_label("The event as JSON").fill('{"data": {"host": "h"}}')
    page.get_by_role("button", name="Save").click()
    problem = page.get_by_test_id("edit-problem")
    assert problem.inner_text().startswith("schema_violation:")
    assert problem.get_by_text("$.data.path", exact=True).is_visible()
    shoot(page, "event-edit-refused")

    page.get_by_label("The event as JSON").fill('{"name": ')
    page.get_by_role("button", name="Save").click()
    assert page.get_by_test_id("edit-problem").inner_text().startswith("invalid_json:")
    assert console.api.get(f"/events/{event['id']}/").json() == changed


def test_an_admin_deletes_an_event_only_after_confirming(console, page):
    first, second = store_events(
        console, [make_event("s-del", timestamp=at(0)), make_event("s-del", timestamp=at(1))]
    )
    sign_in(page, console)
    page.goto(f"{console.url}/console/events/{first['id']}/")
    questions: list[str] = []

    def dismiss(dialog) -> None:
        questions.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    page.get_by_role("button", name="Delete event").click()
    assert questions == [
        f"Delete event {first['id']}? Its session is recounted; this cannot be undone."
    ]
    assert console.api.get(f"/events/{first['id']}/").status_code == 200

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete event").click()
    page.wait_for_url(re.compile(r"/console/events/\?deleted="))
    assert page.get_by_role("status").inner_text() == f"Event {first['id']} deleted."
    assert shown_ids(page) == [second["id"]]
    assert console.api.get(f"/events/{first['id']}/").status_code == 404
    assert console.api.get("/sessions/s-del/").json()["event_count"] == 1


def test_a_reader_sees_no_changes_and_forged_ones_are_refused(console, page):
    (event,) = store_events(console, [make_event("s-read", timestamp=at(0))])
    sign_in(page, console, console.read_token)
    page.goto(f"{console.url}/console/events/{event['id']}/")
    assert page.get_by_role("heading", name=f"Event {event['id']}").is_visible()
    assert page.locator("textarea, button.danger").count() == 0
    assert page.locator("form[method=post]").count() == 1  # signing out only
    csrf = json.loads(page.locator("body").get_attribute("hx-headers"))["X-CSRF-Token"]
    for path, form in (
        (f"/console/events/{event['id']}/edit/", {"event": '{"name": "forged"}'}),
        (f"/console/events/{event['id']}/delete/", {}),
        ("/console/sessions/erase/", {"session_id": "s-read"}),
    ):
        refused = page.request.post(console.url + path, form={"csrf_token": csrf, **form})
        assert refused.status == 403, path
        assert "admin scope" in refused.text()
    assert console.api.get(f"/events/{event['id']}/").json() == event
    assert console.api.get("/sessions/s-read/").json()["event_count"] == 1


def test_what_a_sender_controls_is_shown_as_text_everywhere(console, page):
    data = {"html": IMG, "script": SCRIPT, IMG: "</textarea>" + IMG, "list": [SCRIPT]}
    hostile = make_event(SCRIPT + IMG, category=IMG, name=SCRIPT, data=data, timestamp=at(0))
    (event,) = store_events(console, [hostile])
    sign_in(page, console)

    def nothing_ran() -> None:
        assert page.evaluate("window.owned") is None
        assert page.title() != "owned"
        assert page.locator("main img, main script").count() == 0

    page.goto(console.url + "/console/events/")
    nothing_ran()
    assert page.get_by_role("cell", name=IMG, exact=True).is_visible()
    assert page.get_by_role("cell", name=SCRIPT, exact=True).is_visible()
    assert page.get_by_role("link", name=SCRIPT + IMG).is_visible()
    assert page.locator("code.preview").inner_text().startswith('{"html": "<img src=x onerror=')
    shoot(page, "events-escaped")

    page.get_by_role("link", name=f"Event {event['id']},").click()
    nothing_ran()
    assert json.loads(page.get_by_label("The event's data").inner_text()) == data
    assert json.loads(page.get_by_label("The event as JSON").input_value())["data"] == data
    assert page.locator("dl.facts dd").get_by_text(IMG, exact=True).is_visible()
    shoot(page, "event-escaped")

    page.get_by_role("link", name="The session's timeline").click()
    page.wait_for_url(re.compile(r"/console/sessions/%3Cscript%3E.*%3E/$"))
    nothing_ran()
    assert page.get_by_role("heading", name="Session " + SCRIPT + IMG).is_visible()
    assert page.get_by_role("cell", name=IMG, exact=True).is_visible()
    assert page.get_by_test_id("event-count").inner_text() == "1"
    shoot(page, "session-escaped")
