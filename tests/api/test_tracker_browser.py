"""The browser tracker (`/sdk/eye.js`) in a real headless Chromium, on pages of a website of
another origin, sending to a live `the-eye serve` that lists that origin in
THE_EYE_CORS_ORIGINS. The stored events are the proof: page views across pages and in a
single-page app, clicks and form submits of one session, an event sent as its page closes,
events kept while the network is cut or The Eye answers 503, each stored once."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.helpers import Website, fetch_all
from tests.processes import wait_until

# The README's snippet, as a web developer pastes it.
SNIPPET = (
    '<script async src="{eye}/sdk/eye.js" data-write-key="{key}" '
    'data-clicks="true" data-forms="true"{extra}></script>'
)

PAGES = {
    "index.html": ("Home", '<a id="to-pricing" href="/pricing.html">See   pricing</a>'),
    "pricing.html": (
        "Pricing",
        '<button id="buy" type="button">Buy <b>now</b></button>'
        '<form id="signup" name="signup" action="/thanks.html" method="post">'
        '<input id="email" name="email"><button id="join" type="submit">Join</button></form>',
    ),
    "thanks.html": ("Thanks", "<p>Thank you</p>"),
    "spa.html": ("App", '<div id="app">app</div>'),
}


def session_events(admin: httpx.Client, session_id: str) -> list[dict]:
    """The session's stored events; none while its first is not stored yet (404)."""
    if admin.get(f"/sessions/{session_id}/").status_code == 404:
        return []
    return fetch_all(admin, f"/sessions/{session_id}/events/")


def events_named(admin: httpx.Client, session_id: str, name: str) -> list[dict]:
    return [e for e in session_events(admin, session_id) if e["name"] == name]


def wait_for_events(
    admin: httpx.Client, session_id: str, count: int, name: str | None = None
) -> list[dict]:
    """The session's events (of that name), once `count` of them are stored."""

    def stored() -> list[dict] | None:
        if name is None:
            found = session_events(admin, session_id)
        else:
            found = events_named(admin, session_id, name)
        return found if len(found) >= count else None

    return wait_until(stored)


def write_pages(root: Path, eye_url: str, key: str, extra: str = "") -> None:
    snippet = SNIPPET.format(eye=eye_url, key=key, extra=extra)
    for name, (title, body) in PAGES.items():
        html = f"<!doctype html><html><head><title>{title}</title>{snippet}</head>"
        (root / name).write_text(f"{html}<body>{body}</body></html>")


@pytest.fixture
def site(website, creds) -> Website:
    """The website's pages, each with the README's snippet."""
    write_pages(website.root, website.eye.url, creds.write_key)
    return website


@pytest.fixture
def context(chromium_browser):
    context = chromium_browser.new_context()
    yield context
    context.close()


def wait_for_tracker(page) -> None:
    """Until the page's snippet has loaded the tracker (the script is `async`)."""
    page.wait_for_function("window.theEye && typeof window.theEye.sessionId === 'function'")


def open_page(context, url: str):
    page = context.new_page()
    page.goto(url)
    wait_for_tracker(page)
    return page


def test_the_snippet_records_page_views_clicks_and_a_form_submit_of_one_session(site, context):
    page = open_page(context, f"{site.url}/index.html")
    session_id = page.evaluate("theEye.sessionId()")
    page.click("#to-pricing")
    page.wait_for_url("**/pricing.html")
    page.click("#buy b")
    page.fill("#email", "jo.secret@example.com")
    page.click("#join")
    page.wait_for_url("**/thanks.html")
    wait_for_tracker(page)
    assert page.evaluate("theEye.sessionId()") == session_id

    events = wait_for_events(site.admin, session_id, 7)
    summary = sorted(
        (e["category"], e["name"], e["data"]["path"], e["data"].get("text", "")) for e in events
    )
    assert summary == [
        ("form interaction", "submit", "/pricing.html", ""),
        ("page interaction", "click", "/index.html", "See pricing"),
        ("page interaction", "click", "/pricing.html", "Buy now"),
        ("page interaction", "click", "/pricing.html", "Join"),
        ("page interaction", "pageview", "/index.html", ""),
        ("page interaction", "pageview", "/pricing.html", ""),
        ("page interaction", "pageview", "/thanks.html", ""),
    ]
    [submit] = [e for e in events if e["name"] == "submit"]
    assert submit["data"] == {
        "host": site.url.removeprefix("http://"),
        "path": "/pricing.html",
        "tag": "form",
        "id": "signup",
        "name": "signup",
        "submitter": {"tag": "button", "id": "join", "text": "Join"},
    }
    [buy] = [e for e in events if e["data"].get("id") == "buy"]
    assert buy["data"]["tag"] == "button"
    views = {e["data"]["path"]: e for e in events if e["name"] == "pageview"}
    assert views["/pricing.html"]["data"]["title"] == "Pricing"
    assert views["/pricing.html"]["data"]["referrer"] == f"{site.url}/index.html"
    assert "jo.secret" not in str(events)
    assert len({e["event_id"] for e in events}) == 7
    assert fetch_all(site.admin, "/errors/") == []


def test_a_single_page_app_records_a_page_view_per_history_change(site, context):
    page = open_page(context, f"{site.url}/spa.html")
    session_id = page.evaluate("theEye.sessionId()")
    page.evaluate("history.pushState({}, '', '/app/settings?tab=profile')")
    page.evaluate("history.replaceState({}, '', '/app/settings?tab=profile')")
    page.evaluate("history.pushState({}, '', '/app/billing')")
    page.go_back()
    page.wait_for_url("**/app/settings?tab=profile")

    found = wait_for_events(site.admin, session_id, 4, "pageview")
    assert len(found) == 4
    assert sorted(e["data"]["path"] for e in found) == [
        "/app/billing",
        "/app/settings",
        "/app/settings",
        "/spa.html",
    ]
    # Each view names the one before it: the app's own history, not the document's referrer.
    chain = {e["data"].get("referrer", "").removeprefix(site.url): e["data"] for e in found}
    assert chain["/spa.html"]["path"] == "/app/settings"
    assert chain["/spa.html"]["search"] == "?tab=profile"
    assert chain["/app/settings?tab=profile"]["path"] == "/app/billing"
    assert chain["/app/billing"]["path"] == "/app/settings"


def test_an_event_tracked_as_the_page_closes_still_arrives(site, context):
    page = open_page(context, f"{site.url}/thanks.html")
    session_id = page.evaluate("theEye.sessionId()")
    event_id = page.evaluate(
        "theEye.track('page interaction', 'cta click', {element: 'chat bubble'})"
    )
    page.close()
    [event] = wait_until(lambda: events_named(site.admin, session_id, "cta click"))
    assert event["event_id"] == event_id
    assert event["data"]["element"] == "chat bubble"


def test_events_tracked_while_the_network_is_cut_arrive_once_it_is_back(site, context):
    page = open_page(context, f"{site.url}/thanks.html")
    session_id = page.evaluate("theEye.sessionId()")
    wait_until(lambda: events_named(site.admin, session_id, "pageview"))
    context.set_offline(True)
    ids = page.evaluate(
        "[1, 2, 3].map(n => theEye.track('page interaction', 'offline click', {n}))"
    )
    page.evaluate("theEye.flush()")
    assert page.evaluate("theEye.pending()") == 3  # nothing sent while offline
    saved = page.evaluate(
        "Object.keys(localStorage).filter(k => k.startsWith('the_eye_queue_'))"
        ".flatMap(k => JSON.parse(localStorage.getItem(k)).events.map(e => e.event_id))"
    )
    assert sorted(saved) == sorted(ids)
    context.set_offline(False)

    arrived = wait_for_events(site.admin, session_id, 3, "offline click")
    assert sorted(e["event_id"] for e in arrived) == sorted(ids)
    wait_until(lambda: page.evaluate("theEye.pending()") == 0)
    # The page view and the three, once each.
    assert len(session_events(site.admin, session_id)) == 4
    assert fetch_all(site.admin, "/errors/") == []


def test_events_of_a_page_closed_offline_are_sent_by_the_next_page(site, context):
    page = open_page(context, f"{site.url}/thanks.html")
    session_id = page.evaluate("theEye.sessionId()")
    context.set_offline(True)
    event_id = page.evaluate("theEye.track('page interaction', 'offline last', {n: 1})")
    page.close()
    context.set_offline(False)
    open_page(context, f"{site.url}/index.html")
    [event] = wait_until(lambda: events_named(site.admin, session_id, "offline last"))
    assert event["event_id"] == event_id


def test_events_answered_503_for_a_while_arrive_once_later(site, context):
    refusals = []

    def refuse_three_times(route) -> None:
        if len(refusals) < 3:
            refusals.append(route.request.post_data)
            route.fulfill(
                status=503,
                headers={
                    "Retry-After": "1",
                    "Access-Control-Allow-Origin": site.url,
                    "Access-Control-Expose-Headers": "Retry-After",
                },
                content_type="application/json",
                body='{"error": {"code": "unavailable", "message": "busy"}}',
            )
        else:
            route.continue_()

    context.route(f"{site.eye.url}/events/", refuse_three_times)
    page = open_page(context, f"{site.url}/thanks.html")
    session_id = page.evaluate("theEye.sessionId()")
    ids = page.evaluate("[1, 2].map(n => theEye.track('page interaction', 'busy click', {n}))")
    page.evaluate("theEye.flush()")

    def arrived() -> list[dict] | None:
        # Playwright's sync API runs the route's handler only within one of its calls.
        if page.evaluate("theEye.pending()"):
            return None
        found = events_named(site.admin, session_id, "busy click")
        return found if len(found) == 2 else None

    assert sorted(e["event_id"] for e in wait_until(arrived, timeout=60)) == sorted(ids)
    assert len(refusals) == 3
    refused = {e["event_id"] for body in refusals for e in json.loads(body)["batch"]}
    assert set(ids) <= refused  # retried with the ids they were refused with
    assert len(events_named(site.admin, session_id, "busy click")) == 2
    assert len(events_named(site.admin, session_id, "pageview")) == 1
