"""OpenAPI documentation of the routes that decode their bodies by hand."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class SessionRef(BaseModel):
    id: str = Field(min_length=1, max_length=128)


class IngestEvent(BaseModel):
    """One event as an application sends it."""

    session_id: str | None = Field(
        None, min_length=1, max_length=128, description="Or `session: {id}`."
    )
    session: SessionRef | None = Field(None, description="Alias of `session_id`.")
    category: str = Field(min_length=1, max_length=100, examples=["page interaction"])
    name: str = Field(min_length=1, max_length=100, examples=["pageview"])
    data: dict[str, Any] = Field(
        description="A JSON object with at least one key.",
        examples=[{"host": "www.consumeraffairs.com", "path": "/"}],
    )
    timestamp: str = Field(
        description="ISO 8601; `T` or a space; no offset means UTC.",
        examples=["2021-01-01 09:15:27.243860"],
    )
    event_id: str | None = Field(
        None, min_length=1, max_length=128, description="Client idempotency key."
    )


class IngestBatch(BaseModel):
    batch: list[IngestEvent]
    sent_at: str | None = None
    writeKey: str | None = Field(None, description="The write key, when not sent in a header.")


class Accepted(BaseModel):
    accepted: int
    event_ids: list[str] = Field(description="The idempotency key of each event, in order.")


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class Problem(BaseModel):
    error: ErrorBody


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(ref_template="#/components/schemas/{model}")


INGEST_OPENAPI: dict[str, Any] = {
    "description": (
        'One event, an array of events, or `{"batch": [...]}`. Authenticate with '
        "`Authorization: Bearer <write key>`, HTTP Basic (key as user name), or `writeKey` "
        "in a batch body. `Content-Encoding: gzip` and `Content-Type: text/plain` are accepted. "
        "Events are checked after the 202; the invalid ones become error records."
    ),
    "security": [{"writeKey": []}],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/IngestEvent"},
                        {"type": "array", "items": {"$ref": "#/components/schemas/IngestEvent"}},
                        {"$ref": "#/components/schemas/IngestBatch"},
                    ]
                }
            }
        },
    },
    "responses": {
        "202": {
            "description": "Durably queued.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}},
        },
        **{
            str(status): {
                "description": text,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                },
            }
            for status, text in (
                (400, "`invalid_json`: the body is not JSON, or not an object or array."),
                (401, "`unauthorized`: missing, unknown or revoked write key."),
                (413, "`payload_too_large`: the body is over the limit."),
                (503, "`unavailable`: the queue cannot take events now; see `Retry-After`."),
            )
        },
    },
}

DOCUMENTED_MODELS: tuple[type[BaseModel], ...] = (IngestEvent, IngestBatch, Accepted, Problem)


def add_ingest_components(schema: dict[str, Any]) -> dict[str, Any]:
    """Put the hand-decoded models and the write-key scheme into an OpenAPI document."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in DOCUMENTED_MODELS:
        model_schema = _schema(model)
        schemas.update(model_schema.pop("$defs", {}))
        schemas[model.__name__] = model_schema
    components.setdefault("securitySchemes", {})["writeKey"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An application's write key (or HTTP Basic, the key as user name).",
    }
    return schema
