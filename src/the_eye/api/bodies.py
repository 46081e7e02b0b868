"""The JSON bodies the API answers with, as pydantic models: the OpenAPI document's schemas.

Routes build their answers as plain dicts (encoded by msgspec, see `api.responses`) and name
the model here as their `response_model`, which FastAPI then only documents: a route that
returns a `Response` is never validated nor converted on the way out. The contract run
(`make contract`) checks every answer of a live server against these schemas.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field

# Why an event or a body became an error record (`reason`), in the order of the checks.
ErrorReason = Literal[
    "invalid_json",
    "invalid_event",
    "event_too_large",
    "invalid_data",
    "invalid_timestamp",
    "future_timestamp",
    "schema_violation",
    "check_budget_exceeded",
    "unknown_event_type",
    "processing_failed",
]

# Every time The Eye prints is UTC, ISO 8601 with a `Z`: `2021-01-01T09:15:27.243860Z`.
Time = AwareDatetime
NextPage = str | None


class Event(BaseModel):
    """A stored event."""

    id: int = Field(description="The row id, for `/events/{id}/`.")
    event_id: str = Field(description="The idempotency key, the client's or the server's.")
    session_id: str
    application: str | None = Field(description="The sending application's name.")
    category: str
    name: str
    data: dict[str, Any]
    timestamp: Time = Field(description="When it happened (client clock).")
    received_at: Time


class EventList(BaseModel):
    results: list[Event]
    next: NextPage = Field(description="The next page's URL; null on the last page.")


class Session(BaseModel):
    id: str
    first_seen: Time | None = Field(description="Null until the session has an event.")
    last_seen: Time | None
    event_count: int


class SessionList(BaseModel):
    results: list[Session]
    next: NextPage


class NewSession(BaseModel):
    id: str = Field(description="A new session id (a UUID).")


class ErrorRecord(BaseModel):
    """What could not be stored, and why."""

    id: int
    reason: ErrorReason
    message: str
    details: Any = Field(description="The field at fault and what the check found, or null.")
    event_id: str | None
    session_id: str | None = Field(
        description="The raw event's session id; null when it has none (or a whole-body error)."
    )
    category: str | None = Field(description="The raw event's category, or null.")
    name: str | None = Field(description="The raw event's name, or null.")
    application: str | None
    received_at: Time
    replayed: bool
    replayed_event: int | None = Field(description="The event it became when replayed.")


class ErrorRecordWithPayload(ErrorRecord):
    payload: str = Field(description="The raw event, or the raw body of a whole-body error.")


class ReplayedError(ErrorRecord):
    outcome: Literal["replayed", "still_failing", "already_replayed"]


class ErrorRecordList(BaseModel):
    results: list[ErrorRecord]
    next: NextPage


class ReplayCounts(BaseModel):
    replayed: int = Field(description="Errors that became events.")
    still_failing: int = Field(description="Errors kept, with the reason found now.")
    skipped: int = Field(description="Whole-body and already replayed errors.")


class SchemaVersion(BaseModel):
    category: str
    name: str
    version: int
    json_schema: dict[str, Any] | bool = Field(alias="schema")
    source: str = Field(description="Who registered it: `api`, or the file it was loaded from.")
    created_at: Time


class SchemaVersionList(BaseModel):
    results: list[SchemaVersion]
    next: None = Field(description="Always null: one page holds them all.")


class DryRunFailure(BaseModel):
    """An event or an error the schema would refuse, and why."""

    id: int = Field(
        description="The event's id (`/events/{id}/`) or the error's (`/errors/{id}/`)."
    )
    reason: ErrorReason = Field(description="The reason its error record would give.")
    path: str | None = Field(
        description="The JSON path at fault (`$.data.form.first_name`, `$.timestamp`), if any."
    )
    message: str


class DryRunTally(BaseModel):
    checked: int
    would_pass: int
    would_fail: int
    examples: list[DryRunFailure] = Field(
        description="Up to 10 of those that would fail, newest first."
    )


class SchemaDryRun(BaseModel):
    """What a schema would do to the newest events and errors of its type; nothing is stored."""

    category: str
    name: str
    version: int = Field(description="The version it would get, were it registered now.")
    limit: int = Field(description="How many events, and how many errors, were looked at, at most.")
    events: DryRunTally = Field(description="The type's newest stored events, checked again.")
    errors: DryRunTally = Field(
        description="The type's newest open errors holding one event: one that would pass is "
        "one a replay would store once the schema is in force."
    )


class EventCount(BaseModel):
    category: str
    name: str
    count: int


class ReasonCount(BaseModel):
    reason: ErrorReason
    count: int


class Counts(BaseModel):
    events: list[EventCount]
    errors: list[ReasonCount]


class Bucket(Counts):
    start: Time = Field(description="The bucket's first instant.")


class Stats(BaseModel):
    timestamp__gte: Time | None
    timestamp__lte: Time | None
    application: str | None
    bucket: Literal["minute", "hour", "day"] | None
    totals: Counts
    buckets: list[Bucket] = Field(description="Empty unless `bucket` is set.")


class Application(BaseModel):
    id: int
    name: str
    active: bool = Field(description="False once revoked.")
    strict: bool
    created_at: Time
    write_key: str | None = Field(
        None, description="Only in the answers that make a key: creation and rotation."
    )


class ApplicationList(BaseModel):
    results: list[Application]
    next: None = Field(description="Always null: one page holds them all.")


class Health(BaseModel):
    status: Literal["ok"]


class Token(BaseModel):
    id: int
    name: str
    scope: Literal["read", "admin"]
    active: bool = Field(description="False once revoked.")
    created_at: Time
    token: str | None = Field(None, description="Only in the answer that makes it.")


class TokenList(BaseModel):
    results: list[Token]
    next: None = Field(description="Always null: one page holds them all.")


class Ready(BaseModel):
    status: Literal["ready"]
    store: Literal["ok"]
    queue: Literal["ok"]
    processors: int = Field(description="Processors alive (heartbeat within three intervals).")
