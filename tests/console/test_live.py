"""Live events in a real browser: new events appear without a reload, Pause stops the
polling and Resume picks up what arrived meanwhile, filters narrow the rows (the first page
and the polling alike), and whatever a sender wrote is shown as text."""

from __future__ import annotations

from tests.console.conftest import shoot, sign_in
from tests.helpers import count_rows, make_event
from tests.processes import wait_until
from the_eye.store.tables import events

POLL_PATH = "/console/live/rows/"


def _send(client, *batch: dict) -> None:
    assert client.post("/events/", json=list(batch)).status_code == 202


def _open_live(page, console, query: str = "") -> None:
    sign_in(page, console)
    page.goto(f"{console.url}/console/live/{query}")
    page.evaluate("window.notReloaded = true")


def _sessions_shown(page) -> list[str]:
    return page.locator("#live-rows td.live-session").all_inner_texts()


def test_new_events_appear_without_a_reload(console, page):
    _send(console.sender, make_event(session="before"))
    wait_until(lambda: count_rows(console.engine, events) == 1, timeout=10)
    _open_live(page, console)
    assert _sessions_shown(page) == ["before"]

    hostile = "<img src=x onerror=\"document.title='owned'\">"
    data = {"note": "<script>document.title='owned'</script>"}
    _send(console.sender, make_event(session="live-1"), make_event(session=hostile, data=data))
    wait_until(lambda: _sessions_shown(page) == [hostile, "live-1", "before"], timeout=15)
    assert page.evaluate("window.notReloaded") is True

    newest = page.locator("#live-rows tr").first
    assert newest.get_by_role("cell", name='{"note":"<script>').count() == 1  # shown as text
    assert page.title() != "owned" and page.locator("img[src=x]").count() == 0
    assert newest.get_by_role("link", name=hostile).get_attribute("href") == (
        "/console/sessions/%3Cimg%20src%3Dx%20onerror%3D%22document.title%3D%27owned%27%22%3E/"
    )
    (event_id,) = console.api.get("/events/", params={"session": "live-1"}).json()["results"]
    link = page.locator("#live-rows tr").nth(1).get_by_role("link", name=f"Event {event_id['id']}")
    assert link.get_attribute("href") == f"/console/events/{event_id['id']}/"
    shoot(page, "live")


def test_pause_stops_the_updates_and_resume_picks_them_up(console, page):
    # The page's clock is ours: the test moves it on by the time of many polls at once.
    page.clock.install()
    _open_live(page, console)
    polls: list[str] = []
    page.on(
        "request", lambda request: polls.append(request.url) if POLL_PATH in request.url else None
    )
    pause = page.get_by_role("button", name="Pause")
    pause.press("Enter")  # a keyboard user can pause
    assert pause.get_attribute("aria-pressed") == "true"
    assert "Paused" in page.get_by_role("status").inner_text()
    polls.clear()  # the page's time still flows: a poll may have gone out before the pause

    _send(console.sender, make_event(session="while-paused"))
    wait_until(lambda: count_rows(console.engine, events) == 1, timeout=10)
    page.clock.run_for(10_000)  # five polls' worth of time
    assert polls == []
    assert _sessions_shown(page) == []

    pause.click()
    assert pause.get_attribute("aria-pressed") == "false"
    page.clock.run_for(2_100)
    wait_until(lambda: _sessions_shown(page) == ["while-paused"], timeout=10)
    assert polls and "after=0" in polls[0]  # from the newest row shown before the pause


def test_filters_narrow_the_rows_and_the_polling(console, page, narrow_page):
    shop = console.api.post("/applications/", json={"name": "shop"}).json()["write_key"]
    with console.api.__class__(
        base_url=console.url, headers={"Authorization": f"Bearer {shop}"}
    ) as shop_sender:
        _send(
            shop_sender,
            make_event(session="shop-view"),
            make_event(session="shop-buy", category="checkout", name="buy"),
        )
        _send(
            console.sender,
            make_event(session="web-view"),
            make_event(session="web-buy", category="checkout", name="buy"),
        )
        wait_until(lambda: count_rows(console.engine, events) == 4, timeout=10)

        _open_live(page, console)
        page.get_by_label("Application").select_option("shop")
        page.get_by_role("button", name="Filter").click()
        page.wait_for_url("**/console/live/?application=shop**")
        assert sorted(_sessions_shown(page)) == ["shop-buy", "shop-view"]

        page.get_by_label("Category").fill("checkout")
        page.get_by_label("Name").fill("buy")
        page.get_by_label("Name").press("Enter")
        page.wait_for_url("**category=checkout**")
        assert _sessions_shown(page) == ["shop-buy"]
        page.evaluate("window.notReloaded = true")

        # New events of every kind arrive; the filtered page takes only its own.
        _send(console.sender, make_event(session="web-buy-2", category="checkout", name="buy"))
        _send(
            shop_sender,
            make_event(session="shop-view-2"),
            make_event(session="shop-buy-2", category="checkout", name="buy"),
        )
    wait_until(lambda: _sessions_shown(page) == ["shop-buy-2", "shop-buy"], timeout=15)
    assert page.evaluate("window.notReloaded") is True
    shoot(page, "live-filtered")

    sign_in(narrow_page, console)
    narrow_page.goto(f"{console.url}/console/live/?category=checkout")
    assert sorted(_sessions_shown(narrow_page)) == [
        "shop-buy",
        "shop-buy-2",
        "web-buy",
        "web-buy-2",
    ]
    shoot(narrow_page, "live-narrow")


def test_an_unknown_application_is_said_so(console, page):
    _open_live(page, console, "?application=nope")
    assert page.get_by_role("alert").inner_text() == "No application is named 'nope'."
