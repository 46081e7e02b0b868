"""Segment's HTTP Tracking API on `/v1/*`: bodies, credentials, limits and answers."""

from __future__ import annotations

import base64
import gzip
import uuid

import httpx
import msgspec
import pytest

from tests.helpers import LiveServer, fetch_all
from the_eye.timestamps import parse_timestamp


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def message(**fields) -> dict:
    base = {
        "type": "track",
        "event": "Order Completed",
        "anonymousId": "anon-1",
        "messageId": str(uuid.uuid4()),
        "properties": {"revenue": 10},
        "timestamp": "2024-05-01T11:00:00.000Z",
    }
    base.update(fields)
    return base


@pytest.fixture
def anonymous(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def test_batch_is_answered_as_segment_does_and_stored_as_events(anonymous, creds, processor, admin):
    body = {
        "batch": [
            message(messageId="m-track", context={"ip": "203.0.113.9"}),
            message(type="page", name="Pricing", messageId="m-page", properties={"path": "/p"}),
            message(type="identify", userId="user-1", messageId="m-id", traits={"plan": "pro"}),
        ],
        "context": {"library": {"name": "analytics.js"}},
    }
    response = anonymous.post("/v1/batch", json=body, headers=basic(creds.write_key))
    assert response.status_code == 200
    assert response.json() == {"success": True}
    processor.drain()
    events = {e["event_id"]: e for e in fetch_all(admin, "/events/")}
    assert set(events) == {"m-track", "m-page", "m-id"}
    assert (events["m-track"]["category"], events["m-track"]["name"]) == (
        "track",
        "Order Completed",
    )
    assert events["m-track"]["data"]["context"] == {
        "ip": "203.0.113.9",
        "library": {"name": "analytics.js"},
    }
    assert events["m-page"]["name"] == "Pricing"
    assert events["m-id"]["category"] == "identify"
    assert events["m-id"]["data"]["traits"] == {"plan": "pro"}
    assert {e["session_id"] for e in events.values()} == {"anon-1"}
    assert {e["application"] for e in events.values()} == {"web"}


@pytest.mark.parametrize("call", ["track", "page", "screen", "identify", "group", "alias"])
def test_each_single_call_is_served_with_the_key_in_the_body(
    anonymous, creds, processor, admin, call
):
    body = {"writeKey": creds.write_key, "userId": "user-9", "event": "Signed Up"}
    response = anonymous.post(f"/v1/{call}", json=body)
    assert response.status_code == 200 and response.json() == {"success": True}
    assert anonymous.post(f"/v1/{call}/", json=body).status_code == 200
    processor.drain()
    [*events] = fetch_all(admin, "/events/")
    assert len(events) == 2  # no messageId: two server-made ids
    assert {e["category"] for e in events} == {call}
    assert {e["name"] for e in events} == {
        "Signed Up" if call == "track" else "page" if call == "page" else call
    }
    assert "writeKey" not in events[0]["data"]


def test_gzip_bodies_are_accepted(anonymous, creds, processor, admin):
    body = gzip.compress(msgspec.json.encode({"batch": [message(messageId="gz")]}))
    response = anonymous.post(
        "/v1/batch",
        content=body,
        headers={**basic(creds.write_key), "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200
    processor.drain()
    assert [e["event_id"] for e in fetch_all(admin, "/events/")] == ["gz"]


def test_the_same_message_id_twice_is_one_event(anonymous, creds, processor, admin):
    twice = message(messageId="once-only")
    for _ in range(2):
        response = anonymous.post("/v1/track", json=twice, headers=basic(creds.write_key))
        assert response.status_code == 200
    processor.drain()
    assert [e["event_id"] for e in fetch_all(admin, "/events/")] == ["once-only"]


def test_timestamps_are_corrected_for_the_client_clock(anonymous, creds, processor, admin):
    # A client whose clock is a day fast: its event happened 5 s before it sent the batch.
    body = {
        "batch": [message(timestamp="2099-01-01T00:00:00Z")],
        "sentAt": "2099-01-01T00:00:05Z",
    }
    assert anonymous.post("/v1/batch", json=body, headers=basic(creds.write_key)).status_code == 200
    processor.drain()
    [event] = fetch_all(admin, "/events/")
    happened = parse_timestamp(event["timestamp"])
    received = parse_timestamp(event["received_at"])
    assert (received - happened).total_seconds() == pytest.approx(5, abs=0.01)


def test_bad_messages_become_errors_and_the_rest_is_stored(anonymous, creds, processor, admin):
    body = {
        "batch": [
            message(messageId="good"),
            message(messageId="no-session", anonymousId=None),
            message(messageId="no-event", event=None),
            "not an object",
        ]
    }
    assert anonymous.post("/v1/batch", json=body, headers=basic(creds.write_key)).status_code == 200
    processor.drain()
    assert [e["event_id"] for e in fetch_all(admin, "/events/")] == ["good"]
    errors = fetch_all(admin, "/errors/")
    assert sorted(e["reason"] for e in errors) == ["invalid_event"] * 3
    assert {e["event_id"] for e in errors} >= {"no-session", "no-event"}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/batch", b"{not json"),
        ("/v1/batch", b'{"batch": "nope"}'),
        ("/v1/batch", b"[]"),
        ("/v1/track", b"[1, 2]"),
        ("/v1/identify", b""),
    ],
)
def test_malformed_bodies_are_400_and_kept_as_errors(
    anonymous, creds, processor, admin, path, body
):
    response = anonymous.post(path, content=body, headers=basic(creds.write_key))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    processor.drain()
    [error] = fetch_all(admin, "/errors/")
    assert error["reason"] == "invalid_json"
    # The record says what the client was told, not that the body "could not be read".
    assert error["message"] == response.json()["error"]["message"]
    assert admin.get(f"/errors/{error['id']}/").json()["payload"] == body.decode()


def test_each_bad_message_of_a_batch_is_its_own_error_and_the_rest_is_stored(
    anonymous, creds, processor, admin
):
    """A date overflow, a number no decoder takes, a NUL in messageId, an unknown type:
    each fails alone, on every store."""
    huge = b"1" * 5000
    messages = [
        msgspec.json.encode(message(messageId="good-1")),
        msgspec.json.encode(
            message(
                messageId="far-apart",
                timestamp="0001-01-01T00:00:00Z",
                sentAt="9999-12-31T23:59:59Z",
            )
        ),
        b'{"type": "track", "event": "E", "anonymousId": "a", "messageId": "huge",'
        b' "properties": {"n": ' + huge + b"}}",
        msgspec.json.encode(message(messageId="nul\x00id")),
        msgspec.json.encode(message(messageId="unknown-type", type="purchase")),
        msgspec.json.encode(message(messageId="good-2")),
    ]
    body = b'{"batch": [' + b", ".join(messages) + b"]}"
    response = anonymous.post("/v1/batch", content=body, headers=basic(creds.write_key))
    assert response.status_code == 200
    processor.drain()
    assert sorted(e["event_id"] for e in fetch_all(admin, "/events/")) == ["good-1", "good-2"]
    errors = {e["event_id"]: e for e in fetch_all(admin, "/errors/")}
    assert len(errors) == 4
    assert errors["far-apart"]["reason"] == "invalid_timestamp"
    assert "too far apart" in errors["far-apart"]["message"]
    assert errors["huge"]["reason"] == "invalid_event"
    assert errors["huge"]["message"].startswith("The message is not valid JSON")
    assert errors["unknown-type"]["message"].startswith("`type` is not a Segment message type")
    (nul,) = [e for key, e in errors.items() if key not in ("far-apart", "huge", "unknown-type")]
    assert nul["reason"] == "invalid_data"  # the messageId stays in data, which refuses NUL


def test_oversized_messages_and_batches_are_400(anonymous, creds, processor, admin):
    headers = basic(creds.write_key)
    big = message(properties={"blob": "x" * 33 * 1024})
    one_too_big = anonymous.post("/v1/batch", json={"batch": [message(), big]}, headers=headers)
    assert one_too_big.status_code == 400
    assert one_too_big.json()["error"]["code"] == "payload_too_large"
    assert "Message 1" in one_too_big.json()["error"]["message"]
    single = anonymous.post("/v1/track", json=big, headers=headers)
    assert single.status_code == 400
    # 20 messages of 30 KB: each under the message limit, together over 500 KB.
    many = [message(properties={"blob": "x" * 30 * 1024}) for _ in range(20)]
    batch = anonymous.post("/v1/batch", json={"batch": many}, headers=headers)
    assert batch.status_code == 400
    assert batch.json()["error"]["code"] == "payload_too_large"
    # ... and measured after gzip decoding.
    packed = gzip.compress(msgspec.json.encode({"batch": many}))
    assert len(packed) < 500 * 1024
    inflated = anonymous.post(
        "/v1/batch", content=packed, headers={**headers, "Content-Encoding": "gzip"}
    )
    assert inflated.status_code == 400
    processor.drain()
    assert fetch_all(admin, "/events/") == [] and fetch_all(admin, "/errors/") == []


def test_limits_are_settings(settings, creds):
    small = settings.model_copy(
        update={"segment_max_message_bytes": 300, "segment_max_batch_bytes": 1000}
    )
    with LiveServer(small) as live, httpx.Client(base_url=live.url) as client:
        headers = basic(creds.write_key)
        assert client.post("/v1/track", json=message(), headers=headers).status_code == 200
        padded = message(properties={"blob": "x" * 300})
        assert client.post("/v1/track", json=padded, headers=headers).status_code == 400
        six = {"batch": [message() for _ in range(6)]}
        assert client.post("/v1/batch", json=six, headers=headers).status_code == 400


def test_bad_or_missing_write_key_is_401(anonymous, creds):
    for headers, body in (
        (basic("eye_wk_nope"), {"batch": [message()]}),
        ({}, {"batch": [message()]}),
        ({}, {"batch": [message()], "writeKey": "eye_wk_nope"}),
        ({"Authorization": "Basic !!!"}, {"batch": [message()]}),
    ):
        response = anonymous.post("/v1/batch", json=body, headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["error"]["code"] == "unauthorized"
    bearer = {"Authorization": f"Bearer {creds.write_key}"}
    assert anonymous.post("/v1/track", json=message(), headers=bearer).status_code == 200


def test_openapi_documents_the_segment_routes(anonymous):
    spec = anonymous.get("/openapi.json").json()
    for call in ("batch", "track", "page", "screen", "identify", "group", "alias"):
        operation = spec["paths"][f"/v1/{call}"]["post"]
        assert set(operation["responses"]) >= {"200", "400", "401", "503"}
    batch = spec["paths"]["/v1/batch"]["post"]["requestBody"]["content"]["application/json"]
    assert batch["schema"]["$ref"] == "#/components/schemas/SegmentBatch"
    assert "SegmentMessage" in spec["components"]["schemas"]
    assert "writeKeyBasic" in spec["components"]["securitySchemes"]


@pytest.mark.parametrize(
    ("short", "call"),
    [
        ("t", "track"),
        ("p", "page"),
        ("s", "screen"),
        ("i", "identify"),
        ("g", "group"),
        ("a", "alias"),
    ],
)
def test_analytics_js_short_paths_are_their_calls_with_text_plain_bodies(
    anonymous, creds, processor, admin, short, call
):
    """analytics.js posts `track` to `/v1/t` as `text/plain`, its key in the body."""
    body = message(type=None, messageId=f"short-{short}", writeKey=creds.write_key)
    del body["type"]  # the path says which call it is
    headers = {"Content-Type": "text/plain"}
    response = anonymous.post(f"/v1/{short}", content=msgspec.json.encode(body), headers=headers)
    assert response.status_code == 200 and response.json() == {"success": True}
    processor.drain()
    [event] = fetch_all(admin, "/events/")
    assert event["event_id"] == f"short-{short}"
    assert event["category"] == call
    assert event["data"]["type"] == call
    assert event["name"] == {"track": "Order Completed", "page": "page"}.get(call, call)


def test_analytics_js_batch_path_is_the_batch_call(anonymous, creds, processor, admin):
    body = {
        "writeKey": creds.write_key,
        "batch": [message(messageId="b-1"), message(messageId="b-2", type="page", name="Home")],
        "sentAt": "2024-05-01T11:00:01.000Z",
    }
    response = anonymous.post(
        "/v1/b", content=msgspec.json.encode(body), headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 200
    assert anonymous.post("/v1/b/", json=body).status_code == 200
    processor.drain()
    events = {e["event_id"]: e for e in fetch_all(admin, "/events/")}
    assert (events["b-1"]["name"], events["b-2"]["name"]) == ("Order Completed", "Home")
    assert fetch_all(admin, "/errors/") == []


def test_short_paths_answer_preflight_and_cors_for_configured_origins(settings, creds):
    site = "https://shop.example"
    with (
        LiveServer(settings.model_copy(update={"cors_origins": site})) as live,
        httpx.Client(base_url=live.url) as client,
    ):
        preflight = client.options(
            "/v1/t",
            headers={
                "Origin": site,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == site
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        answer = client.post(
            "/v1/t",
            content=msgspec.json.encode(message()),
            headers={**basic(creds.write_key), "Origin": site, "Content-Type": "text/plain"},
        )
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == site
        # A page's sender reads Retry-After to back off: it must be exposed to it.
        assert answer.headers["access-control-expose-headers"] == "Retry-After"
        elsewhere = client.post(
            "/v1/t",
            json=message(),
            headers={**basic(creds.write_key), "Origin": "https://x.example"},
        )
        assert "access-control-allow-origin" not in elsewhere.headers


def test_short_paths_are_left_out_of_the_openapi_document(anonymous):
    paths = anonymous.get("/openapi.json").json()["paths"]
    assert "/v1/track" in paths
    assert not {f"/v1/{short}" for short in "btpsiga"} & set(paths)
    assert anonymous.get("/v1/t").status_code == 405
