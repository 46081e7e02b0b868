"""A session's timeline in a real browser: its events in order with the time between them,
paged without losing the gap at a page border, ids that need escaping, and erasing."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from tests.console.conftest import shoot, sign_in, store_events
from tests.helpers import make_event
from the_eye.store import queries
from the_eye.timestamps import format_timestamp

START = datetime(2021, 1, 1, 9, 0, 0)
# Seconds after START, and the gap the timeline should show before each.
OFFSETS = [0, 1.5, 121.5, 3721.5, 3721.5, 97321.5]
GAPS = ["start", "+1.5 s", "+2 min 0 s", "+1 h 0 min", "+0 s", "+1 d 2 h"]


def at(seconds: float) -> str:
    return format_timestamp(START + timedelta(seconds=seconds))


def timeline_rows(page) -> list[list]:
    """Each row's event id and time since the previous event."""
    return page.locator("table.timeline tbody tr[data-event-id]").evaluate_all(
        "rows => rows.map(row => "
        "[Number(row.dataset.eventId), row.querySelector('.gap').textContent])"
    )


def stored_session(console, session_id: str):
    with console.engine.connect() as conn:
        return queries.get_session(conn, session_id)


def seed_timeline(console, session: str) -> list[dict]:
    events = [
        make_event(session, name=f"step {i}", timestamp=at(offset))
        for i, offset in enumerate(OFFSETS)
    ]
    return store_events(console, events[::-1])  # sent newest first: the page orders them


def test_a_timeline_shows_the_events_in_order_with_the_time_between_them(console, page):
    stored = seed_timeline(console, "s-timeline")
    sign_in(page, console)
    page.goto(console.url + "/console/events/?session=s-timeline")
    page.get_by_role("link", name="s-timeline").first.click()
    page.wait_for_url(re.compile(r"/console/sessions/s-timeline/$"))
    assert page.get_by_test_id("first-seen").inner_text() == at(0)
    assert page.get_by_test_id("last-seen").inner_text() == at(OFFSETS[-1])
    assert page.get_by_test_id("event-count").inner_text() == "6"
    assert timeline_rows(page) == [[e["id"], gap] for e, gap in zip(stored, GAPS, strict=True)]
    names = page.locator("table.timeline tbody tr td:nth-child(4)").all_inner_texts()
    # Steps 3 and 4 happened at the same instant: they come in the order they were stored.
    assert names == ["step 0", "step 1", "step 2", "step 4", "step 3", "step 5"]
    shoot(page, "session")


def test_a_long_timeline_is_paged_and_keeps_the_gap_across_pages(console, page):
    stored = seed_timeline(console, "s-paged")
    sign_in(page, console)
    page.goto(console.url + "/console/sessions/s-paged/?limit=4")
    rows = timeline_rows(page)
    page.get_by_role("link", name="Next page →").click()
    rows += timeline_rows(page)
    assert not page.get_by_role("link", name="Next page →").count()
    assert rows == [[e["id"], gap] for e, gap in zip(stored, GAPS, strict=True)]


def test_the_timeline_is_readable_at_390_pixels(console, narrow_page):
    seed_timeline(console, "s-narrow")
    sign_in(narrow_page, console)
    narrow_page.goto(console.url + "/console/sessions/s-narrow/")
    assert len(timeline_rows(narrow_page)) == 6
    assert narrow_page.evaluate("document.documentElement.scrollWidth") <= 390
    shoot(narrow_page, "session-narrow")


def test_session_ids_that_need_escaping_have_a_timeline(console, page):
    odd = ["a/b?c=d#e %2F f", "..", "."]
    store_events(console, [make_event(session, timestamp=at(0)) for session in odd])
    sign_in(page, console)
    for session in odd:
        page.goto(console.url + "/console/events/")
        page.get_by_role("link", name=session, exact=True).click()
        assert page.get_by_role("heading", name=f"Session {session}", exact=True).is_visible()
        assert page.get_by_test_id("event-count").inner_text() == "1"
    answer = page.goto(console.url + "/console/sessions/no-such-session/")
    assert answer is not None and answer.status == 404


def test_an_admin_erases_a_session_only_after_confirming(console, page):
    session = "erase/me?now"
    kept, *_ = store_events(
        console,
        [make_event("s-kept", timestamp=at(0))]
        + [make_event(session, timestamp=at(i)) for i in range(3)],
    )
    sign_in(page, console)
    page.goto(console.url + "/console/events/")
    page.get_by_role("link", name=session).first.click()
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Erase session").click()
    assert page.get_by_test_id("event-count").inner_text() == "3"
    assert stored_session(console, session) is not None

    questions: list[str] = []

    def accept(dialog) -> None:
        questions.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.get_by_role("button", name="Erase session").click()
    page.wait_for_url(re.compile(r"/console/events/\?erased="))
    assert questions == ["Erase this session and its 3 events? This cannot be undone."]
    assert page.get_by_role("status").inner_text() == f"Session {session} erased, with its events."
    assert page.locator("tbody tr[data-event-id]").evaluate_all(
        "rows => rows.map(row => Number(row.dataset.eventId))"
    ) == [kept["id"]]
    assert console.api.get("/events/", params={"session": session}).json()["results"] == []
    assert stored_session(console, session) is None
