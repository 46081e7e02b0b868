"""The OpenAPI document: what FastAPI builds from the routes, completed so that it tells every
answer the service gives.

Routes name their success bodies (`api.bodies`) and the error answers particular to them
(`answers`); `complete_document` adds what every route shares, derived from the route itself
so that it cannot drift: the scope its credential dependency demands (`x-scope`, `security`,
`401`/`403`), `400 invalid_request` where FastAPI would have documented a `422` the service
never gives, `404` for a path with an id, and `503` with `Retry-After` wherever the store is
touched. Every error answer is the one `Error` component. The hand-decoded ingest routes are
documented here too (`ingest_operation`, `segment_operation`) without changing how they run.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

ERROR_REF = {"$ref": "#/components/schemas/Error"}

_SCOPE_TEXT = {
    "none": "No credential.",
    "write": (
        "An application's write key: `Authorization: Bearer <key>`, HTTP Basic with the key "
        'as user name, or `writeKey` in the body (`"batch"` bodies).'
    ),
    "write or read": "An application's write key, or an API token of any scope.",
    "read": "An API token, read or admin scope: `Authorization: Bearer <token>`.",
    "admin": "An API token with the admin scope: `Authorization: Bearer <token>`.",
}
_SECURITY = {
    "none": [],
    # `writeKeyBasic` is described, not required: both schemes fill `Authorization`, and tools
    # that test them one at a time take a request that sends one for one that sends none.
    "write": [{"writeKey": []}],
    "write or read": [{"apiToken": []}, {"writeKey": []}],
    "read": [{"apiToken": ["read"]}],
    "admin": [{"apiToken": ["admin"]}],
}
_UNAUTHORIZED = (
    "`unauthorized`: no credential, or an unknown or revoked one (ingest: a body too large "
    "to carry its key inside, `THE_EYE_BODY_KEY_MAX_BYTES`, without it in the header)."
)
_FORBIDDEN = {
    "read": "`forbidden`: a write key, which can only send events.",
    "admin": "`forbidden`: a write key, or an API token without the admin scope.",
}
INVALID_REQUEST = "`invalid_request`: a parameter or the body does not match this document."
UNAVAILABLE = "`unavailable`: the store or the queue is down or busy; see `Retry-After`."
RATE_LIMITED = (
    "`rate_limited`: too many failed authentications from this address "
    "(`THE_EYE_AUTH_FAILURES_PER_ADDRESS`); see `Retry-After`."
)
RETRY_AFTER_HEADER = {
    "description": "Seconds to wait before trying again; the message says the same.",
    "schema": {"type": "integer", "minimum": 0},
}


class ErrorBody(BaseModel):
    code: str = Field(
        description="What went wrong, for programs: `invalid_request`, `invalid_filter`, "
        "`invalid_cursor`, `invalid_json`, `invalid_schema`, `unauthorized`, `forbidden`, "
        "`not_found`, `method_not_allowed`, `conflict`, `not_replayable`, "
        "`payload_too_large`, `too_many_events`, `unsupported_media_type`, "
        "`unsupported_encoding`, `rate_limited`, `unavailable`, `processor_down`, an "
        "event's error reason (edits), or `internal_error`."
    )
    message: str = Field(description="What went wrong, for people.")
    details: Any = Field(None, description="More about it, when there is more: the field at fault.")


class Error(BaseModel):
    """Every error answer of The Eye."""

    error: ErrorBody


def error_answer(description: str, status: int | str = 0) -> dict[str, Any]:
    """One documented error answer: the `Error` body, and `Retry-After` on a `503` or `429`."""
    answer: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": ERROR_REF}},
    }
    if str(status) in ("429", "503"):
        answer["headers"] = {"Retry-After": {"$ref": "#/components/headers/Retry-After"}}
    return answer


def answers(texts: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """A route's own error answers (`responses=`), by status: each text lists its `code`s."""
    return {status: error_answer(text, status) for status, text in texts.items()}


# --- The hand-decoded ingest routes -----------------------------------------------------


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


_QUEUE_FULL = "`unavailable`: the queue or the store cannot take events now; see `Retry-After`."
_ENCODING = "`unsupported_encoding`: a `Content-Encoding` other than gzip."
_KEY_RATE_LIMITED = (
    "`rate_limited`: too many requests for this write key (`THE_EYE_RATE_LIMIT_PER_KEY`), "
    "or too many failed authentications from this address; see `Retry-After`."
)


def ingest_operation() -> dict[str, Any]:
    """The OpenAPI operation of `POST /events/` (`openapi_extra`)."""
    return {
        "description": (
            'One event, an array of events, or `{"batch": [...]}`. `Content-Encoding: gzip` '
            "and `Content-Type: text/plain` are accepted. Only the body's JSON shape is "
            "checked before the `202`: each event is checked afterwards, and an invalid one "
            "becomes an error record (`GET /errors/`), not an error answer."
        ),
        "x-scope": "write",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"$ref": "#/components/schemas/IngestEvent"},
                            {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/IngestEvent"},
                            },
                            {"$ref": "#/components/schemas/IngestBatch"},
                        ]
                    }
                }
            },
        },
        "responses": {
            "202": {
                "description": "Durably queued.",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}
                },
            },
            **answers(
                {
                    400: "`invalid_json`: the body is not JSON, or not an object or an array "
                    "(also kept as an error record).",
                    413: "`payload_too_large`: the body is over `THE_EYE_MAX_BODY_BYTES` "
                    "(after gzip decoding); `too_many_events`: more events than "
                    "`THE_EYE_MAX_EVENTS_PER_REQUEST`.",
                    415: _ENCODING,
                    429: _KEY_RATE_LIMITED,
                    503: _QUEUE_FULL,
                }
            ),
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


def segment_operation(call: str) -> dict[str, Any]:
    """The OpenAPI operation of `POST /v1/<call>` (`openapi_extra`)."""
    model = "SegmentBatch" if call == "batch" else "SegmentMessage"
    what = (
        "A batch of Segment messages"
        if call == "batch"
        else f"One Segment `{call}` message (its `type` is `{call}`)"
    )
    return {
        "description": (
            f"{what}, as Segment's HTTP Tracking API takes it, so that Segment's SDKs can send "
            "to The Eye; `Content-Encoding: gzip` is accepted. Each message becomes an event "
            '(README, "Segment-compatible ingestion") and is checked after the answer, like '
            "those of `POST /events/`; `messageId` is its `event_id`."
        ),
        "x-scope": "write",
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
            **answers(
                {
                    400: "`invalid_json`: not JSON or not the right shape; `payload_too_large`: "
                    "a message over 32 KB or a batch over 500 KB (by default): Segment's SDKs "
                    "expect a `400` there.",
                    413: "`too_many_events`: more messages than `THE_EYE_MAX_EVENTS_PER_REQUEST`.",
                    415: _ENCODING,
                    429: _KEY_RATE_LIMITED,
                    503: _QUEUE_FULL,
                }
            ),
        },
    }


DOCUMENTED_MODELS: tuple[type[BaseModel], ...] = (
    Error,
    IngestEvent,
    IngestBatch,
    Accepted,
    SegmentMessage,
    SegmentBatch,
    SegmentSuccess,
)


# --- Completing the document --------------------------------------------------------------


def scope_of(operation: dict[str, Any]) -> str:
    """The credential an operation demands: its own `x-scope` (the ingest routes, which
    authenticate by hand), else the strictest role its API token requirement names (`read`,
    `admin`, or `write` for routes that also take a write key; see `api.auth`)."""
    declared = operation.get("x-scope")
    if declared is not None:
        return str(declared)
    roles = {role for req in operation.get("security", []) for role in req.get("apiToken", ())}
    if "admin" in roles:
        return "admin"
    if "read" in roles:
        return "read"
    if "write" in roles:
        return "write or read"
    return "none"


def _add_components(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for model in DOCUMENTED_MODELS:
        model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(model_schema.pop("$defs", {}))
        schemas[model.__name__] = model_schema
    components.setdefault("headers", {})["Retry-After"] = RETRY_AFTER_HEADER
    components["securitySchemes"] = {
        "apiToken": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token (`the-eye tokens create`); each operation's "
            "requirement names the role it needs, `read` (any token) or `admin`.",
        },
        "writeKey": {
            "type": "http",
            "scheme": "bearer",
            "description": "An application's write key (ingest may also take it as "
            "`writeKey` in a batch body).",
        },
        "writeKeyBasic": {
            "type": "http",
            "scheme": "basic",
            "description": "An application's write key as user name, no password (Segment's way).",
        },
    }


def _without_null(parameter: dict[str, Any]) -> None:
    """A query parameter is sent or left out, never null: document `str | None` as `str`."""
    schema = parameter["schema"]
    kept = [s for s in schema.get("anyOf", ()) if s.get("type") != "null"]
    if len(kept) == 1 and len(schema["anyOf"]) == 2:
        del schema["anyOf"]
        parameter["schema"] = {**kept[0], **schema}


def _complete_operation(operation: dict[str, Any], path: str) -> None:
    for parameter in operation.get("parameters", ()):
        _without_null(parameter)
    scope = operation["x-scope"] = scope_of(operation)
    operation["security"] = _SECURITY[scope]
    scope_line = f"**Scope:** {_SCOPE_TEXT[scope]}"
    description = operation.get("description")
    operation["description"] = f"{description}\n\n{scope_line}" if description else scope_line
    responses = operation["responses"]
    if responses.pop("422", None) is not None:
        if "400" in responses:
            described = responses["400"]["description"]
            responses["400"]["description"] = f"{described} {INVALID_REQUEST}"
        else:
            responses["400"] = error_answer(INVALID_REQUEST)
    if scope != "none":
        responses.setdefault("401", error_answer(_UNAUTHORIZED))
        responses.setdefault("429", error_answer(RATE_LIMITED, 429))
    if scope in _FORBIDDEN:
        responses.setdefault("403", error_answer(_FORBIDDEN[scope]))
    if "{" in path:
        responses.setdefault("404", error_answer("`not_found`: no such resource."))
    if path != "/health/":
        responses.setdefault("503", error_answer(UNAVAILABLE, 503))
    operation["responses"] = dict(sorted(responses.items()))


# Where an answer's ids lead (OpenAPI links): (path, method, status) -> the operations at
# `target` (a path) that take the answer's value at `pointer` as their `parameter`.
LINKS: dict[tuple[str, str, str], list[tuple[str, str, str]]] = {
    ("/applications/", "post", "201"): [("/applications/{app_id}/", "app_id", "/id")],
    ("/events/", "get", "200"): [("/events/{id}/", "id", "/results/0/id")],
    ("/errors/", "get", "200"): [("/errors/{error_id}/", "error_id", "/results/0/id")],
    ("/errors/{error_id}/replay/", "post", "200"): [("/events/{id}/", "id", "/replayed_event")],
    ("/sessions/", "post", "201"): [
        ("/sessions/{session_id}/", "session_id", "/id"),
        ("/sessions/{session_id}/events/", "session_id", "/id"),
    ],
}


def _add_links(schema: dict[str, Any]) -> None:
    for (path, method, status), targets in LINKS.items():
        links = schema["paths"][path][method]["responses"][status].setdefault("links", {})
        for target, parameter, pointer in targets:
            for target_method, operation in schema["paths"][target].items():
                ref = "#/paths/" + target.replace("~", "~0").replace("/", "~1")
                links[operation["operationId"]] = {
                    "operationRef": f"{ref}/{target_method}",
                    "parameters": {parameter: f"$response.body#{pointer}"},
                }


def complete_document(schema: dict[str, Any]) -> dict[str, Any]:
    """Add to FastAPI's document what every operation shares (see the module's doc)."""
    _add_components(schema)
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            _complete_operation(operation, path)
    _add_links(schema)
    return schema
