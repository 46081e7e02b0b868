"""Event types and schemas in a real browser: the list with counts and versions in force, a
dry run's exact pass and fail counts, putting a version in force, and the diff between two."""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect

from tests.console.conftest import shoot, sign_in
from tests.helpers import PATH_SCHEMA, fetch_all, make_event, post_schema
from tests.processes import wait_until

HOSTILE = "<img src=x onerror=\"document.title='owned'\">"


def stored(console, count: int) -> None:
    """Wait until the console's processor has stored `count` events."""
    wait_until(lambda: len(fetch_all(console.api, "/events/")) == count, timeout=20)


def seed_pageviews(console) -> None:
    """5 pageviews stored (3 with a path, 2 without), then, once the processor applies a
    version 1 asking for a `referrer`, 3 pageview errors (2 with a path, 1 without)."""
    stored_events = [make_event(event_id=f"ok-{i}", data={"path": f"/{i}"}) for i in range(3)]
    stored_events += [make_event(event_id=f"bad-{i}", data={"host": "h"}) for i in range(2)]
    assert console.sender.post("/events/", json=stored_events).status_code == 202
    stored(console, 5)
    assert post_schema(console.api, {"required": ["referrer"]}).status_code == 201
    # Probes of a type of their own, with a schema registered after version 1: once one is
    # refused, the processor has version 1 too, and no pageview is stored by mistake.
    assert post_schema(console.api, {"required": ["x"]}, "probe", "probe").status_code == 201
    probes = iter(range(1000))

    def probe_refused() -> bool:
        event = make_event(category="probe", name="probe", event_id=f"probe-{next(probes)}")
        console.sender.post("/events/", json=event)
        return bool(fetch_all(console.api, "/errors/", reason="schema_violation"))

    wait_until(probe_refused, timeout=20, interval=0.2)
    failing = [make_event(event_id=f"err-ok-{i}", data={"path": f"/e{i}"}) for i in range(2)]
    failing.append(make_event(event_id="err-bad", data={"host": "h"}))
    assert console.sender.post("/events/", json=failing).status_code == 202
    keys = {event["event_id"] for event in failing}
    wait_until(
        lambda: len([e for e in fetch_all(console.api, "/errors/") if e["event_id"] in keys]) == 3,
        timeout=20,
    )


def test_the_list_shows_every_type_with_its_count_and_version_in_force(console, page):
    events = [make_event(event_id=f"view-{i}") for i in range(3)]
    events += [make_event(name="cta click", event_id=f"click-{i}") for i in range(2)]
    events.append(make_event(category=HOSTILE, name="<script>document.title='owned'</script>"))
    assert console.sender.post("/events/", json=events).status_code == 202
    assert (
        post_schema(console.api, {"type": "object"}, "page interaction", "cta click").status_code
        == 201
    )
    assert (
        post_schema(console.api, {"type": "object"}, "page interaction", "cta click").status_code
        == 201
    )
    assert (
        post_schema(console.api, {"type": "object"}, "form interaction", "submit").status_code
        == 201
    )
    stored(console, 6)
    sign_in(page, console)
    page.get_by_role("link", name="Event types").click()
    page.wait_for_url(re.compile(r"/console/types/$"))
    rows = page.get_by_test_id("types").locator("tbody tr")
    assert [rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count())] == [
        [HOSTILE, "<script>document.title='owned'</script>", "1", "none: write one"],
        ["form interaction", "submit", "0", "version 1"],
        ["page interaction", "cta click", "2", "version 2"],
        ["page interaction", "pageview", "3", "none: write one"],
    ]
    assert page.title() != "owned" and page.locator("img[src=x]").count() == 0
    shoot(page, "types")
    page.get_by_role("link", name="version 2").click()
    assert page.get_by_role("heading", name="Event type page interaction / cta click").is_visible()
    assert "category=page+interaction&name=cta+click" in page.url
    # A type's names may hold anything: the hostile one opens as text.
    page.go_back()
    page.get_by_role("row").filter(has_text="<script>").get_by_role("link").click()
    assert page.get_by_role("heading").filter(has_text=HOSTILE).is_visible()
    assert page.title() != "owned" and page.locator("img[src=x]").count() == 0


def test_a_dry_run_shows_exact_counts_and_putting_it_in_force_makes_a_version(console, page):
    seed_pageviews(console)
    sign_in(page, console)
    page.goto(f"{console.url}/console/types/")
    page.get_by_role("row").filter(has_text="pageview").get_by_role("link").click()
    assert page.get_by_role("heading", name="Event type page interaction / pageview").is_visible()

    page.get_by_label("Schema", exact=True).fill('{"type": "objekt"}')
    page.get_by_role("button", name="Dry run").click()
    expect(page.get_by_test_id("dry-run-problem")).to_contain_text("objekt")
    page.get_by_label("Schema", exact=True).fill("{not json")
    page.get_by_role("button", name="Dry run").click()
    expect(page.get_by_test_id("dry-run-problem")).to_contain_text("not JSON")

    page.get_by_label("Schema", exact=True).fill(json.dumps(PATH_SCHEMA, indent=2))
    page.get_by_role("button", name="Dry run").click()
    expect(page.get_by_test_id("events-checked")).to_have_text("5")
    counts = {
        key: page.get_by_test_id(key).inner_text()
        for key in (
            "events-checked",
            "events-would-pass",
            "events-would-fail",
            "errors-checked",
            "errors-would-pass",
            "errors-would-fail",
        )
    }
    assert counts == {
        "events-checked": "5",
        "events-would-pass": "3",
        "events-would-fail": "2",
        "errors-checked": "3",
        "errors-would-pass": "2",
        "errors-would-fail": "1",
    }
    failures = page.get_by_test_id("dry-run-failures").locator("tbody tr")
    assert failures.count() == 3
    for i in range(3):
        assert failures.nth(i).locator("td").nth(2).inner_text() == "$.data.path"
    assert failures.nth(2).locator("td").first.inner_text().startswith("error ")
    shoot(page, "type-dry-run")

    # A smaller N checks fewer; the page keeps the schema as written.
    page.get_by_label("N (events and errors checked)").fill("1")
    page.get_by_role("button", name="Dry run").click()
    expect(page.get_by_test_id("events-checked")).to_have_text("1")
    expect(
        page.get_by_role("heading", name="Dry run as version 2, against the newest 1")
    ).to_be_visible()

    page.get_by_role("button", name="Put in force").click()
    page.wait_for_url(re.compile(r"created=2"))
    assert page.get_by_role("status").inner_text() == "Version 2 is in force."
    versions = page.get_by_test_id("versions").locator("tbody tr")
    assert versions.count() == 2
    assert versions.first.locator("td").first.inner_text() == "2 in force"
    in_force = console.api.get("/schemas/page interaction/pageview/").json()["results"][0]
    assert (in_force["version"], in_force["schema"]) == (2, PATH_SCHEMA)

    # The diff of version 1 to 2: the `referrer` rule went, the `path` rules came.
    diff = page.get_by_test_id("diff")
    assert '-    "referrer"' in diff.locator(".diff-del").all_inner_texts()
    added = diff.locator(".diff-add").all_inner_texts()
    assert '+    "path"' in added and '+      "pattern": "^/",' in added
    shoot(page, "type-versions")


def test_the_diff_between_two_chosen_versions(console, page, narrow_page):
    for required in (["a"], ["a", "b"], ["c"]):
        assert post_schema(console.api, {"required": required}).status_code == 201
    sign_in(page, console)
    page.goto(f"{console.url}/console/types/schema/?category=page+interaction&name=pageview")
    diff = page.get_by_test_id("diff")  # the newest two by default
    assert diff.locator(".diff-head").all_inner_texts() == ["--- version 2", "+++ version 3"]
    page.get_by_label("From version", exact=True).select_option("1")
    page.get_by_label("To version", exact=True).select_option("2")
    page.get_by_role("button", name="Show changes").click()
    page.wait_for_url(re.compile(r"from=1&to=2"))
    assert diff.locator(".diff-del").all_inner_texts() == ['-    "a"']
    assert diff.locator(".diff-add").all_inner_texts() == ['+    "a",', '+    "b"']
    page.get_by_label("To version", exact=True).select_option("1")
    page.get_by_role("button", name="Show changes").click()
    assert diff.inner_text() == "Versions 1 and 1 are the same."

    sign_in(narrow_page, console)
    narrow_page.goto(page.url.replace("from=1&to=1", "from=1&to=3"))
    shoot(narrow_page, "type-narrow")
    assert narrow_page.evaluate("document.documentElement.scrollWidth") <= 390


def test_a_reader_may_dry_run_but_not_put_in_force(console, page):
    assert console.sender.post("/events/", json=make_event()).status_code == 202
    stored(console, 1)
    sign_in(page, console, console.read_token)
    page.goto(f"{console.url}/console/types/schema/?category=page+interaction&name=pageview")
    assert page.get_by_role("heading", name="Try a schema").is_visible()
    assert page.get_by_role("button", name="Put in force").count() == 0
    page.get_by_role("button", name="Dry run").click()
    expect(page.get_by_test_id("events-would-pass")).to_have_text("1")
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    forged = page.request.post(
        f"{console.url}/console/types/schema/put-in-force/",
        form={
            "csrf_token": csrf or "",
            "category": "page interaction",
            "name": "pageview",
            "draft": "{}",
        },
    )
    assert forged.status == 403
    assert console.api.get("/schemas/").json()["results"] == []
