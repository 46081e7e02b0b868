"""Segment's own Python library (segment-analytics-python), pointed at The Eye with `host=`."""

from __future__ import annotations

import pytest

from tests.helpers import fetch_all

analytics = pytest.importorskip("segment.analytics")


def segment_client(server, creds, **options):
    return analytics.Client(creds.write_key, host=server.url, max_retries=0, **options)


def test_segments_library_sends_track_page_and_identify(server, creds, processor, admin):
    # In sync mode the library raises any failure from the call itself.
    client = segment_client(server, creds, sync_mode=True)
    client.track(
        "user-1",
        "Order Completed",
        {"revenue": 42, "category": "checkout"},
        anonymous_id="anon-7",
        message_id="sdk-track",
    )
    client.page("user-1", name="Pricing", properties={"path": "/pricing"}, message_id="sdk-page")
    client.identify("user-1", {"plan": "pro"}, message_id="sdk-identify")
    processor.drain()
    events = {e["event_id"]: e for e in fetch_all(admin, "/events/")}
    assert set(events) == {"sdk-track", "sdk-page", "sdk-identify"}
    tracked = events["sdk-track"]
    assert (tracked["category"], tracked["name"], tracked["session_id"]) == (
        "checkout",
        "Order Completed",
        "anon-7",
    )
    assert tracked["data"]["properties"] == {"revenue": 42, "category": "checkout"}
    assert tracked["data"]["context"]["library"]["name"] == "analytics-python"
    assert (events["sdk-page"]["category"], events["sdk-page"]["name"]) == ("page", "Pricing")
    assert events["sdk-page"]["session_id"] == "user-1"
    assert events["sdk-identify"]["data"]["traits"] == {"plan": "pro"}
    assert fetch_all(admin, "/errors/") == []


def test_segments_library_batches_with_gzip_and_a_repeat_is_one_event(
    server, creds, processor, admin
):
    failures = []
    client = segment_client(
        server, creds, gzip=True, upload_size=10, on_error=lambda e, b: failures.append(e)
    )
    for _ in range(2):
        client.track("user-1", "Signed Up", {"plan": "pro"}, message_id="sent-twice")
        client.flush()
    for i in range(15):
        client.track("user-2", "Clicked", {"n": i})
    client.shutdown()
    assert failures == []
    processor.drain()
    events = fetch_all(admin, "/events/")
    assert [e["event_id"] for e in events].count("sent-twice") == 1
    assert len(events) == 16
    assert fetch_all(admin, "/errors/") == []


def test_segments_library_sees_a_bad_key(server, creds):
    client = analytics.Client("eye_wk_nope", host=server.url, max_retries=0, sync_mode=True)
    with pytest.raises(analytics.request.APIError) as raised:
        client.track("user-1", "Signed Up")
    assert raised.value.status == 401
