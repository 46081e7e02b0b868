"""Bounded schema checks: local references only, RE2 patterns, linear `uniqueItems`, a depth
limit and a time budget, each ending as the event's own error rather than a stalled or
failed batch."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from datetime import datetime

import pytest
import sqlalchemy as sa

from tests.helpers import make_event
from the_eye.processor.checks import EventRejected, Limits, ValidEvent, check_event
from the_eye.processor.schemas import SchemaInvalid, SchemaRegistry, check_schema, compile_schema
from the_eye.services.schemas import register_schema
from the_eye.store.tables import schemas
from the_eye.timestamps import utcnow

# Python's `re` takes about ten seconds on this; RE2 microseconds.
BACKTRACKING = "^(a+)+$"
EVIL_TEXT = "a" * 27 + "!"


class SchemaServer:
    """A web server on 127.0.0.1 that serves a schema and counts the requests for it."""

    def __init__(self) -> None:
        self.requests = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                body = b'{"type": "string"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/schema.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever)


@pytest.fixture
def schema_server() -> Iterator[SchemaServer]:
    server = SchemaServer()
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.thread.join(10)


def registry_with(engine, schema, budget_seconds: float = 0.1) -> SchemaRegistry:
    """A registry whose (form interaction, submit) schema is `schema`, stored as it is."""
    with engine.begin() as conn:
        conn.execute(
            schemas.insert(),
            {
                "category": "form interaction",
                "name": "submit",
                "version": 1,
                "schema": schema,
                "digest": "-",
                "source": "test",
                "created_at": utcnow(),
            },
        )
    registry = SchemaRegistry(engine, budget_seconds=budget_seconds)
    registry.refresh(force=True)
    return registry


def checked(registry: SchemaRegistry, data) -> ValidEvent | EventRejected:
    raw = make_event(category="form interaction", name="submit", data=data)
    return check_event(raw, "id-1", datetime(2021, 1, 2), Limits(), registry.check, 1)


def nested(depth: int, leaf=1) -> dict:
    data = leaf
    for _ in range(depth):
        data = {"a": data}
    return data


def test_a_schema_that_refers_outside_itself_is_refused_and_never_fetched(schema_server):
    for schema in (
        {"$ref": schema_server.url},
        {"properties": {"a": {"$ref": "#/$defs/a"}}, "$defs": {"a": {"$ref": schema_server.url}}},
        {"$id": "http://127.0.0.1:1/root.json", "$ref": "other.json"},
        {"$ref": "#/$defs/missing"},
    ):
        with pytest.raises(SchemaInvalid) as refused:
            compile_schema(schema)
        assert refused.value.details["rule"] == "$ref"
        assert refused.value.details["ref"] in refused.value.message
    assert schema_server.requests == 0
    # References inside the schema, and to the draft's own meta-schema, are fine.
    local = compile_schema({"$ref": "#/$defs/a", "$defs": {"a": {"type": "string"}}})
    assert local.is_valid("x") and not local.is_valid(1)
    compile_schema({"$ref": "https://json-schema.org/draft/2020-12/schema"})
    # A member named `$ref` or a `$ref` inside a `const` is no reference.
    compile_schema({"properties": {"$ref": {"type": "string"}}, "const": {"$ref": "http://x"}})


def test_a_stored_schema_with_a_remote_ref_fails_the_event_without_fetching(engine, schema_server):
    registry = registry_with(
        engine, {"type": "object", "properties": {"a": {"$ref": schema_server.url}}}
    )
    rejected = checked(registry, {"a": "text"})
    assert isinstance(rejected, EventRejected)
    assert rejected.reason == "schema_violation" and rejected.details["rule"] == "$ref"
    assert schema_server.requests == 0


def test_backtracking_patterns_take_linear_time():
    validator = compile_schema(
        {
            "type": "object",
            "properties": {
                "text": {"type": "string", "pattern": BACKTRACKING},
                "regex": {"type": "string", "format": "regex"},
            },
            "patternProperties": {BACKTRACKING: {"type": "integer"}},
            "additionalProperties": {"type": "integer"},
            "unevaluatedProperties": False,
        }
    )
    started = time.monotonic()
    errors = list(validator.iter_errors({"text": EVIL_TEXT, EVIL_TEXT: "x", "regex": "(a+)+$"}))
    # A generous bound: the standard library's engine takes about ten seconds here.
    assert time.monotonic() - started < 2
    assert {e.validator for e in errors} == {"pattern", "type", "unevaluatedProperties"}
    assert validator.is_valid({"text": "aaa", "aaa": 1})
    assert not validator.is_valid({"regex": "(a)\\1"})


@pytest.mark.parametrize(
    ("schema", "path"),
    [
        ({"type": "string", "pattern": "(a)\\1"}, "$.pattern"),
        ({"properties": {"x": {"pattern": "^(?!admin)"}}}, "$.properties.x.pattern"),
        ({"patternProperties": {"(?<=x)y": {}}}, "$.patternProperties"),
    ],
)
def test_a_pattern_re2_cannot_run_is_refused(schema, path):
    with pytest.raises(SchemaInvalid) as refused:
        compile_schema(schema)
    assert refused.value.details["rule"] == "pattern"
    assert refused.value.details["path"] == path
    assert "RE2" in refused.value.message


def test_unique_items_is_linear_and_judges_equality_as_json_schema_does():
    validator = compile_schema({"type": "array", "uniqueItems": True})
    many = [{"id": i, "tags": ["a", "b"], "nested": {"n": i}} for i in range(3000)]
    started = time.monotonic()
    assert validator.is_valid(many)
    # A generous bound: comparing every pair took sixteen seconds.
    assert time.monotonic() - started < 2
    assert not validator.is_valid([*many, {"nested": {"n": 5}, "tags": ["a", "b"], "id": 5}])
    assert not validator.is_valid([1, 1.0])
    assert not validator.is_valid([[1, {"a": 2.0}], [1.0, {"a": 2}]])
    assert validator.is_valid([1, True])
    assert validator.is_valid([0, False, None, "0", [0], {"0": 0}])
    assert validator.is_valid([[1, 2], [2, 1]])
    (error,) = validator.iter_errors(["x", "y", "x"])
    assert error.message == "has non-unique elements (items 0 and 2 are equal)"


RECURSIVE = {
    "$defs": {"node": {"type": "object", "additionalProperties": {"$ref": "#/$defs/node"}}},
    "$ref": "#/$defs/node",
}


@pytest.mark.parametrize("depth", [65, 300])
def test_data_too_deep_to_check_is_the_events_own_error(engine, depth):
    registry = registry_with(engine, RECURSIVE)
    rejected = checked(registry, nested(depth, {}))
    assert isinstance(rejected, EventRejected)
    assert rejected.reason == "check_budget_exceeded"
    assert rejected.details == {
        "field": "data",
        "path": "$.data",
        "schema_version": 1,
        "limit": 64,
    }
    assert "64 levels" in rejected.message
    assert isinstance(checked(registry, nested(60, {})), ValidEvent)


# Each level tries both branches of `anyOf`, and both fail at the bottom: 2^depth checks.
EXPONENTIAL = {
    "$defs": {
        "node": {
            "type": "object",
            "properties": {
                "a": {"anyOf": [{"$ref": "#/$defs/node"}, {"$ref": "#/$defs/node"}]},
            },
            "required": ["a"],
        }
    },
    "$ref": "#/$defs/node",
}


def test_a_check_past_its_time_budget_is_the_events_own_error(engine):
    registry = registry_with(engine, EXPONENTIAL, budget_seconds=0.05)
    started = time.monotonic()
    rejected = checked(registry, nested(40))
    assert time.monotonic() - started < 5  # generous: the budget is 50 ms
    assert isinstance(rejected, EventRejected)
    assert rejected.reason == "check_budget_exceeded"
    assert rejected.details["budget_ms"] == 50
    assert "50 ms" in rejected.message
    # A small event of the same type is checked as usual.
    assert checked(registry, nested(3)).reason == "schema_violation"


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ({"type": "number", "maximum": float("inf")}, "$.maximum"),
        ({"enum": [1, float("nan")]}, "$.enum[1]"),
        ({"properties": {"n": {"maximum": 2**70}}}, "$.properties.n.maximum"),
        ({"minimum": -(2**63) - 1}, "$.minimum"),
    ],
)
def test_a_schema_with_numbers_json_cannot_carry_is_refused(engine, raw, path):
    with pytest.raises(SchemaInvalid) as refused:
        check_schema("form interaction", "submit", raw)
    assert refused.value.details == {"path": path}
    with pytest.raises(SchemaInvalid), engine.begin() as conn:
        register_schema(conn, "form interaction", "submit", raw)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schemas)).scalar_one() == 0
    # The edges of 64 bits are fine.
    check_schema("c", "n", {"minimum": -(2**63), "maximum": 2**64 - 1, "multipleOf": 0.5})


def test_a_stored_pattern_re2_cannot_run_fails_the_event_rather_than_passing_it(engine):
    registry = registry_with(engine, {"properties": {"name": {"pattern": "^(?!admin)"}}})
    rejected = checked(registry, {"name": "guest"})
    assert isinstance(rejected, EventRejected)
    assert rejected.reason == "schema_violation" and rejected.details["rule"] == "pattern"
    assert "RE2" in rejected.message
