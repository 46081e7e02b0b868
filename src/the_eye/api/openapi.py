"""OpenAPI documentation of the routes that decode their bodies by hand."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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


class SegmentMessage(BaseModel):
    """One message of Segment's HTTP Tracking API; any other field is kept in the event's data."""

    model_config = ConfigDict(extra="allow")

    type: str | None = Field(
        None,
        description="`track`, `page`, `screen`, `identify`, `group` or `alias`; "
        "a single call's path implies it.",
    )
    messageId: str | None = Field(None, description="The event's idempotency key (`event_id`).")
    anonymousId: str | None = Field(None, description="The session, when no `sessionId` is set.")
    userId: str | None = Field(None, description="The session, when nothing else names one.")
    event: str | None = Field(None, description="A track's name.", examples=["Order Completed"])
    name: str | None = Field(None, description="A page's name.")
    properties: dict[str, Any] | None = Field(
        None, description="`category` and `session_id` here set the event's."
    )
    traits: dict[str, Any] | None = None
    context: dict[str, Any] | None = Field(None, description="`sessionId` sets the session.")
    timestamp: str | None = Field(None, description="ISO 8601, when it happened (client clock).")
    originalTimestamp: str | None = None
    sentAt: str | None = Field(None, description="ISO 8601, when it was sent (client clock).")
    writeKey: str | None = Field(None, description="The write key, when not sent in a header.")


class SegmentBatch(BaseModel):
    batch: list[SegmentMessage]
    context: dict[str, Any] | None = Field(None, description="Merged into each message's context.")
    sentAt: str | None = Field(None, description="For messages that have no `sentAt` of their own.")
    writeKey: str | None = Field(None, description="The write key, when not sent in a header.")


class SegmentSuccess(BaseModel):
    success: bool = True


def segment_openapi(call: str) -> dict[str, Any]:
    """The OpenAPI operation of `POST /v1/<call>`."""
    model = "SegmentBatch" if call == "batch" else "SegmentMessage"
    what = (
        "A batch of Segment messages"
        if call == "batch"
        else f"One Segment `{call}` message (its `type` is `{call}`)"
    )
    return {
        "description": (
            f"{what}, as Segment's HTTP Tracking API takes it, so that Segment's SDKs can send "
            "to The Eye. Authenticate with HTTP Basic (the write key as user name), a Bearer "
            "write key, or `writeKey` in the body; `Content-Encoding: gzip` is accepted. Each "
            'message becomes an event (README, "Segment-compatible ingestion") and is checked '
            "after the answer, like those of `POST /events/`; `messageId` is its `event_id`."
        ),
        "security": [{"writeKeyBasic": []}, {"writeKey": []}],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}},
        },
        "responses": {
            "200": {
                "description": "Durably queued.",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/SegmentSuccess"}}
                },
            },
            **{
                str(status): {
                    "description": text,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                    },
                }
                for status, text in (
                    (
                        400,
                        "`invalid_json`: not JSON or not the right shape; `payload_too_large`: "
                        "a message over 32 KB or a batch over 500 KB (by default).",
                    ),
                    (401, "`unauthorized`: missing, unknown or revoked write key."),
                    (503, "`unavailable`: the queue cannot take events now; see `Retry-After`."),
                )
            },
        },
    }


DOCUMENTED_MODELS: tuple[type[BaseModel], ...] = (
    IngestEvent,
    IngestBatch,
    Accepted,
    Problem,
    SegmentMessage,
    SegmentBatch,
    SegmentSuccess,
)


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
    components["securitySchemes"]["writeKeyBasic"] = {
        "type": "http",
        "scheme": "basic",
        "description": "An application's write key as user name, no password (Segment's way).",
    }
    return schema
