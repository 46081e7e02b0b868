"""Health, readiness, metrics, the OpenAPI document, and the error shape everywhere."""

from __future__ import annotations

import httpx

from tests.helpers import make_event


def test_health_and_ready(server):
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/health/").json() == {"status": "ok"}
        assert client.get("/health").status_code == 200
        ready = client.get("/ready/")
        assert ready.status_code == 200 and ready.json()["store"] == "ok"


def test_metrics_count_what_happened(sender, processor, server):
    sender.post("/events/", json=[make_event(), make_event(data={})])
    with httpx.Client(base_url=server.url) as client:
        before = client.get("/metrics").text
        assert "the_eye_events_received_total 2" in before
        assert "the_eye_queue_depth 1" in before
        processor.drain()
        after = client.get("/metrics/").text
    assert "the_eye_events_stored_total 1" in after
    assert "the_eye_events_errored_total 1" in after
    assert "the_eye_queue_depth 0" in after
    assert "# TYPE the_eye_processing_lag_seconds gauge" in after


def test_openapi_documents_every_route_including_ingest(server):
    with httpx.Client(base_url=server.url) as client:
        spec = client.get("/openapi.json").json()
        docs = client.get("/docs/")
    ingest = spec["paths"]["/events/"]["post"]
    assert ingest["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    assert set(ingest["responses"]) >= {"202", "400", "401", "413", "503"}
    assert "IngestEvent" in spec["components"]["schemas"]
    for path in (
        "/events/{event_id}/",
        "/sessions/{session_id}/events/",
        "/errors/",
        "/applications/",
    ):
        assert path in spec["paths"]
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_unknown_paths_and_methods_answer_with_the_error_body(server):
    with httpx.Client(base_url=server.url) as client:
        missing = client.get("/nothing/here/")
        wrong = client.put("/health/")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"


def test_post_without_trailing_slash_is_served_not_redirected(sender):
    response = sender.post("/events", json=make_event())
    assert response.status_code == 202
