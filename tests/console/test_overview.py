"""The overview in a real browser: the counts of what was sent, charts drawn without a
script error, and the page refreshing itself as new events and errors arrive."""

from __future__ import annotations

from tests.console.conftest import shoot, sign_in
from tests.helpers import make_event
from tests.processes import wait_until
from the_eye.timestamps import format_timestamp, utcnow


def _send(console, valid: int, invalid: int) -> None:
    """One batch: `valid` events stamped now, `invalid` ones with a bad timestamp."""
    now = format_timestamp(utcnow())
    batch = [make_event(session=f"overview-{i}", timestamp=now) for i in range(valid)]
    batch += [make_event(timestamp="not a time") for _ in range(invalid)]
    assert console.sender.post("/events/", json=batch).status_code == 202


def _text(page, test_id: str) -> str:
    return page.get_by_test_id(test_id).inner_text()


def test_the_overview_counts_the_events_and_errors_sent_and_draws_charts(
    console, page, narrow_page
):
    _send(console, valid=3, invalid=2)
    sign_in(page, console)

    def counted() -> bool:
        page.reload()
        return _text(page, "events-day") == "3" and _text(page, "errors-day") == "2"

    wait_until(counted, timeout=20)
    # Each chart says in words what it draws, and both charts are drawn.
    assert _text(page, "chart-minute-totals") == "3 events, 2 errors"
    assert _text(page, "chart-hour-totals") == "3 events, 2 errors"
    assert page.locator(".chart-plot canvas").count() == 2
    assert page.get_by_role("img", name="Last hour, per minute: 3 events, 2 errors.").count() == 1
    assert page.get_by_role("cell", name="invalid_timestamp").is_visible()
    assert _text(page, "queue-depth") == "0"
    shoot(page, "overview-charts")

    sign_in(narrow_page, console)
    assert narrow_page.locator(".chart-plot canvas").count() == 2
    width = narrow_page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # nothing pushes the page sideways at a phone's width
    shoot(narrow_page, "overview-narrow")


def test_the_overview_refreshes_by_itself_as_events_arrive(console, page):
    sign_in(page, console)
    assert _text(page, "events-day") == "0"
    page.evaluate("window.notReloaded = true")
    _send(console, valid=2, invalid=1)

    wait_until(lambda: _text(page, "events-day") == "2", timeout=20)
    wait_until(lambda: _text(page, "errors-day") == "1", timeout=10)
    assert page.evaluate("window.notReloaded") is True  # swapped in, not a new page
    # The charts of the fresh panel are drawn, and those of the old one are gone.
    wait_until(lambda: page.locator(".chart-plot canvas").count() == 2, timeout=5)
    assert _text(page, "chart-minute-totals") == "2 events, 1 error"
