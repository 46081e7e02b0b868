"""Segment's own browser library, `@segment/analytics-next` from npm, in a real headless
Chromium on a page of another origin, pointed at a live `the-eye serve` by its `apiHost`
alone: in its direct delivery mode (a request per call to `/v1/t`, `/v1/p`, ... with
`keepalive`) and its batching mode (`/v1/b`), the calls are stored as the README maps them.

The test set-up installs the library with npm into build/npm (once; skipped when npm cannot
reach its registry). Chromium reaches this machine only, so nothing comes from Segment's CDN:
the page gives the library its settings inline, as a site that does not use Segment does."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import Website, fetch_all
from tests.processes import wait_until

ANALYTICS_NEXT = "@segment/analytics-next@1.84.3"
NPM_PREFIX = Path(__file__).resolve().parents[2] / "build" / "npm"
UMD = NPM_PREFIX / "node_modules" / "@segment" / "analytics-next" / "dist" / "umd"

PAGE = """<!doctype html><html><head><title>Segment</title>
<script src="/analytics-next/index.js"></script></head><body><script>
window.sent = AnalyticsNext.AnalyticsBrowser.load(
  {{writeKey: {key}, cdnSettings: {{integrations: {{"Segment.io": {{apiKey: {key}}}}}}}}},
  {{integrations: {{"Segment.io": {{apiHost: {api_host}, protocol: "http",
    deliveryStrategy: {delivery}}}}}}}
).then(async ([analytics]) => {{
  await Promise.all([
    analytics.track("Order Completed", {{revenue: 42, category: "checkout"}}),
    analytics.page("Docs", "Pricing", {{path: "/pricing"}}),
    analytics.identify("user-1", {{plan: "pro"}}),
    analytics.group("org-1", {{name: "Acme"}}),
  ]);
  await analytics.alias("user-2", "user-1");
  return analytics.user().anonymousId();
}});
</script></body></html>
"""


@pytest.fixture(scope="module")
def analytics_next() -> Path:
    """The library's browser bundles, installed with npm once into build/npm."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("needs npm to install @segment/analytics-next")
    if not (UMD / "index.js").exists():
        done = subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(NPM_PREFIX),
                "--no-save",
                "--no-audit",
                "--no-fund",
                ANALYTICS_NEXT,
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0 or not (UMD / "index.js").exists():
            pytest.skip(f"npm could not install {ANALYTICS_NEXT}: {done.stderr[-500:]}")
    return UMD


@pytest.fixture
def segment_site(website: Website, analytics_next: Path) -> Website:
    shutil.copytree(analytics_next, website.root / "analytics-next")
    return website


def open_segment_page(chromium_browser, site: Website, key: str, delivery: dict) -> tuple:
    """The page sends its calls; the anonymous id it sent them as, and the paths it posted to."""
    page_path = site.root / "segment.html"
    api_host = site.eye.url.removeprefix("http://") + "/v1"
    page_path.write_text(
        PAGE.format(
            key=json.dumps(key), api_host=json.dumps(api_host), delivery=json.dumps(delivery)
        )
    )
    context = chromium_browser.new_context()
    posted: list[str] = []
    context.on(
        "request",
        lambda request: request.method == "POST" and posted.append(request.url),
    )
    page = context.new_page()
    page.goto(f"{site.url}/segment.html")
    anonymous_id = page.evaluate("window.sent")
    return context, page, anonymous_id, posted


def stored_calls(site: Website, count: int) -> dict[str, dict]:
    def stored() -> list[dict] | None:
        events = fetch_all(site.admin, "/events/")
        return events if len(events) >= count else None

    return {e["data"]["type"]: e for e in wait_until(stored)}


def check_mapping(events: dict[str, dict], anonymous_id: str) -> None:
    assert set(events) == {"track", "page", "identify", "group", "alias"}
    track = events["track"]
    assert (track["category"], track["name"]) == ("checkout", "Order Completed")
    assert track["session_id"] == anonymous_id
    assert track["event_id"] == track["data"]["messageId"]
    assert track["data"]["properties"] == {"revenue": 42, "category": "checkout"}
    assert track["data"]["context"]["library"]["name"] == "analytics.js"
    assert "writeKey" not in track["data"]
    page = events["page"]
    assert (page["category"], page["name"]) == ("Docs", "Pricing")
    assert events["identify"]["data"]["traits"] == {"plan": "pro"}
    assert events["identify"]["session_id"] == anonymous_id
    assert events["group"]["data"]["groupId"] == "org-1"
    assert events["alias"]["data"]["previousId"] == "user-1"
    for event in events.values():
        assert event["application"] == "web"


def test_analytics_js_sends_each_call_to_its_short_path(segment_site, creds, chromium_browser):
    delivery = {"strategy": "standard", "config": {"keepalive": True}}
    context, _page, anonymous_id, posted = open_segment_page(
        chromium_browser, segment_site, creds.write_key, delivery
    )
    try:
        check_mapping(stored_calls(segment_site, 5), anonymous_id)
        v1 = f"{segment_site.eye.url}/v1/"
        assert sorted(url.removeprefix(v1) for url in posted if url.startswith(v1)) == [
            "a",
            "g",
            "i",
            "p",
            "t",
        ]
        assert fetch_all(segment_site.admin, "/errors/") == []
    finally:
        context.close()


def test_analytics_js_batches_to_the_batch_path(segment_site, creds, chromium_browser):
    delivery = {"strategy": "batching", "config": {"size": 5, "timeout": 500}}
    context, _page, anonymous_id, posted = open_segment_page(
        chromium_browser, segment_site, creds.write_key, delivery
    )
    try:
        check_mapping(stored_calls(segment_site, 5), anonymous_id)
        v1 = f"{segment_site.eye.url}/v1/"
        calls = {url.removeprefix(v1) for url in posted if url.startswith(v1)}
        assert calls == {"b"}
        assert fetch_all(segment_site.admin, "/errors/") == []
    finally:
        context.close()
