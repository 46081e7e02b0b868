"""Signing in to the console and out, in a real browser: tokens refused, the session cookie's
flags, CSRF on changes, and a revoked token ending its console sessions."""

from __future__ import annotations

import re

from tests.console.conftest import shoot, sign_in
from tests.helpers import make_event
from tests.processes import wait_until
from the_eye.timestamps import format_timestamp, utcnow


def test_sign_in_and_sign_out(console, page):
    page.goto(console.url + "/")
    page.wait_for_url(re.compile(r"/console/sign-in/"))
    shoot(page, "sign-in")
    sign_in(page, console)
    assert page.get_by_role("heading", name="Overview").is_visible()
    assert page.get_by_text("admin token (THE_EYE_ADMIN_TOKEN)").is_visible()
    shoot(page, "overview")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/console/sign-in/$"))
    page.goto(console.url + "/console/")
    assert "/console/sign-in/" in page.url  # the session is gone, not just the page left


def test_the_session_cookie_is_http_only_strict_and_scoped(console, page):
    sign_in(page, console)
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "eye_console"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/console/"
    assert cookie["expires"] > 0  # a session that ends, not one kept forever
    assert page.evaluate("document.cookie") == ""  # not readable by a page's scripts


def test_a_wrong_token_is_refused(console, page):
    page.goto(console.url + "/console/sign-in/")
    page.get_by_label("API token").fill("eye_tk_not-a-token")
    with page.expect_response(re.compile(r"/console/sign-in/$")) as answer:
        page.get_by_role("button", name="Sign in").click()
    assert answer.value.status == 401
    assert page.get_by_role("alert").inner_text() == "Unknown or revoked API token."
    assert not [c for c in page.context.cookies() if c["name"] == "eye_console"]
    page.get_by_label("API token").fill(console.write_key)
    page.get_by_role("button", name="Sign in").click()
    assert "write key" in page.get_by_role("alert").inner_text()


def test_a_page_asked_for_before_signing_in_opens_after_it(console, page):
    page.goto(console.url + "/console/?from=link")
    page.get_by_label("API token").fill(console.read_token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/console/\?from=link$"))
    assert page.get_by_text("analyst").first.is_visible()


def test_a_change_without_the_csrf_token_is_refused(console, page):
    sign_in(page, console)
    refused = page.request.post(console.url + "/console/sign-out/", form={"csrf_token": "forged"})
    assert refused.status == 403
    assert "CSRF" in refused.text()
    page.goto(console.url + "/console/")
    assert page.get_by_role("heading", name="Overview").is_visible()  # still signed in


def test_revoking_a_token_ends_its_console_sessions(console, page):
    made = console.api.post("/tokens/", json={"name": "temp", "scope": "read"}).json()
    sign_in(page, console, made["token"])
    assert console.api.delete(f"/tokens/{made['id']}/").status_code == 204
    page.goto(console.url + "/console/")
    assert "/console/sign-in/" in page.url


def test_the_overview_counts_events_and_errors_and_escapes_them(console, page):
    hostile = "<img src=x onerror=\"document.title='owned'\">"
    now = format_timestamp(utcnow())
    script = "<script>document.title='owned'</script>"
    events = [make_event(category=hostile, name=script, timestamp=now)]
    events.append({**make_event(), "timestamp": "not a time"})
    assert console.sender.post("/events/", json=events).status_code == 202
    sign_in(page, console)

    def counted() -> bool:
        page.reload()
        return page.get_by_role("cell", name=hostile).count() == 1

    wait_until(counted, timeout=20)
    assert page.get_by_role("cell", name="invalid_timestamp").is_visible()
    assert page.title() != "owned"
    assert page.locator("img[src=x]").count() == 0


def test_failures_on_console_paths_are_pages(console, page):
    sign_in(page, console)
    answer = page.goto(console.url + "/console/no-such-page/")
    assert answer is not None and answer.status == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert page.get_by_role("alert").inner_text() == "No such resource."
    assert page.get_by_role("heading", name="Not found").is_visible()
