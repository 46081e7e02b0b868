"""The OpenAPI document tells every answer, the scope of every operation, and the methods a
path serves; the Swagger UI needs no internet. (`make contract` checks the document against
a live server; these tests pin what it cannot see.)"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

import the_eye
from the_eye.api.app import SWAGGER_UI_ASSETS


@pytest.fixture
def spec(anonymous) -> dict:
    return anonymous.get("/openapi.json").json()


def operations(spec: dict):
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


@pytest.fixture
def anonymous(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def test_every_success_answer_has_a_schema(spec):
    for path, method, operation in operations(spec):
        for status, answer in operation["responses"].items():
            if status.startswith("2") and status != "204":
                assert answer["content"], (method, path, status)
                for content in answer["content"].values():
                    assert content["schema"], (method, path, status)


def test_exports_document_the_media_type_of_each_format(spec):
    for path in ("/events/export/", "/errors/export/"):
        operation = spec["paths"][path]["get"]
        assert set(operation["responses"]["200"]["content"]) == {
            "application/x-ndjson",
            "text/csv",
            "application/vnd.apache.parquet",
        }
        (format_param,) = [p for p in operation["parameters"] if p["name"] == "format"]
        assert format_param["schema"]["enum"] == ["ndjson", "csv", "parquet"]
        assert operation["x-scope"] == "read"


def test_errors_are_documented_as_they_are_answered(spec):
    assert set(spec["components"]["schemas"]["Error"]["required"]) == {"error"}
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, method, operation in operations(spec):
        responses = operation["responses"]
        assert "422" not in responses, (method, path)
        for status, answer in responses.items():
            if status.startswith(("4", "5")):
                schema = answer["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)
        if path != "/health/":
            assert "Retry-After" in responses["503"]["headers"], (method, path)
        if operation["x-scope"] != "none":
            assert "401" in responses, (method, path)
            assert "Retry-After" in responses["429"]["headers"], (method, path)


def test_each_operation_names_its_scope(spec):
    scopes = {(m, p): op["x-scope"] for p, m, op in operations(spec)}
    assert scopes[("post", "/events/")] == "write"
    assert scopes[("post", "/v1/batch")] == "write"
    assert scopes[("get", "/events/")] == "read"
    assert scopes[("delete", "/events/{id}/")] == "admin"
    assert scopes[("get", "/applications/")] == "admin"
    assert scopes[("post", "/sessions/")] == "write or read"
    assert scopes[("get", "/health/")] == "none"
    admin = spec["paths"]["/schemas/"]["post"]
    assert admin["security"] == [{"apiToken": ["admin"]}]
    assert "403" in admin["responses"] and "Scope:" in admin["description"]
    assert spec["paths"]["/events/"]["post"]["security"] == [{"writeKey": []}]


def test_parameters_carry_formats_enums_and_bounds(spec):
    params = {p["name"]: p["schema"] for p in spec["paths"]["/errors/"]["get"]["parameters"]}
    assert params["limit"]["maximum"] == 1000
    assert params["received_at__gte"] == {**params["received_at__gte"], "type": "string"}
    assert params["received_at__gte"]["format"] == "date-time"
    assert "schema_violation" in params["reason"]["enum"]
    replay = spec["paths"]["/errors/replay/"]["post"]["parameters"]
    for name in ("session", "category", "name"):
        assert params[name]["type"] == "string" and params[name]["description"], name
        assert name in {p["name"] for p in replay}, name
    record = spec["components"]["schemas"]["ErrorRecord"]
    assert {"session_id", "category", "name"} <= set(record["required"])
    stats = {p["name"]: p["schema"] for p in spec["paths"]["/stats/"]["get"]["parameters"]}
    assert stats["timestamp__lte"]["format"] == "date-time"
    assert set(stats["bucket"]["enum"]) == {"minute", "hour", "day"}


def test_an_unknown_error_reason_is_refused(reader):
    response = reader.get("/errors/", params={"reason": "no_such_reason"})
    assert response.status_code == 400


def test_a_bad_time_filter_is_refused_even_for_an_unknown_application(admin):
    for method, path in (("GET", "/errors/"), ("POST", "/errors/replay/")):
        params = {"application": "nobody", "received_at__gte": "yesterday"}
        response = admin.request(method, path, params=params)
        assert response.status_code == 400, (method, path)
        assert response.json()["error"]["code"] == "invalid_filter"


def test_the_events_of_an_erased_session_are_a_404(admin):
    session_id = admin.post("/sessions/").json()["id"]
    assert admin.get(f"/sessions/{session_id}/events/").json()["results"] == []
    assert admin.delete(f"/sessions/{session_id}/").status_code == 204
    response = admin.get(f"/sessions/{session_id}/events/")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_a_segment_call_answers_405_to_other_methods(anonymous):
    for path in ("/v1/track", "/v1/track/", "/v1/batch"):
        response = anonymous.get(path)
        assert response.status_code == 405, path
        assert response.headers["allow"] == "POST"
        assert response.json()["error"]["code"] == "method_not_allowed"


def test_allow_lists_every_method_the_path_serves(anonymous):
    for method, path, allowed in (
        ("POST", "/events/1/", "DELETE, GET, PATCH, PUT"),
        ("PUT", "/events/", "GET, POST"),
        ("PUT", "/health/", "GET"),
        ("GET", "/errors/replay/", "POST"),
        ("DELETE", "/errors/1/replay/", "POST"),
    ):
        response = anonymous.request(method, path)
        assert response.status_code == 405, (method, path)
        assert response.headers["allow"] == allowed, (method, path)


def test_docs_load_only_local_assets_and_serve_them(anonymous):
    page = anonymous.get("/docs/")
    assert page.status_code == 200
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert urls and all(url.startswith("/docs/assets/") for url in urls), urls
    assert "https://" not in page.text and "http://" not in page.text
    for url in urls:
        asset = anonymous.get(url)
        assert asset.status_code == 200, url
        assert asset.content == (SWAGGER_UI_ASSETS / url.rsplit("/", 1)[1]).read_bytes()
    assert "SwaggerUIBundle" in anonymous.get("/docs/assets/swagger-ui-bundle.js").text


def test_the_documented_error_reasons_include_every_reason_the_processor_gives():
    from typing import get_args

    from the_eye.api.bodies import ErrorReason

    source = "\n".join(
        p.read_text() for p in (Path(the_eye.__file__).parent / "processor").glob("*.py")
    )
    given = set(re.findall(r'reject\(\s*"([a-z_]+)"', source))
    given |= set(re.findall(r'reason(?:: str)?\s*=\s*"([a-z_]+)"', source))
    assert {"invalid_event", "schema_violation", "check_budget_exceeded"} <= given
    assert given <= set(get_args(ErrorReason))
