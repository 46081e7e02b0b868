"""`/events/`: query stored events (read token)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Body, Depends, Query, Request, Response
from starlette.responses import StreamingResponse

from the_eye.api import bodies
from the_eye.api.auth import AdminAccess, ReadAccess
from the_eye.api.export import FormatParam, export_answers, export_response
from the_eye.api.openapi import answers
from the_eye.api.pagination import (
    LIST_ANSWERS,
    CursorParam,
    Limit,
    RowId,
    iso,
    list_page,
    time_filter,
    time_param,
)
from the_eye.api.problems import ApiError, not_found
from the_eye.api.responses import JSONBody
from the_eye.api.state import AppState, state_of
from the_eye.export.formats import EVENT_COLUMNS, Format
from the_eye.services import corrections
from the_eye.store import exports, queries
from the_eye.store.tables import AnyRow

router = APIRouter(tags=["events"], dependencies=[ReadAccess])

EDIT_ERRORS = answers(
    {
        400: "`invalid_request`: not a JSON object, or a field that cannot change; "
        "the edited event's error reason (`invalid_event`, `invalid_data`, "
        "`schema_violation`, ...): it fails the checks of a new event.",
        409: "`conflict`: the new `event_id` is another event's.",
        415: "`unsupported_media_type`: a body that is not `application/json`.",
    }
)


def event_json(row: AnyRow, names: dict[int, str]) -> dict[str, Any]:
    return {
        "id": row.id,
        "event_id": row.event_id,
        "session_id": row.session_id,
        "application": names.get(row.application_id),
        "category": row.category,
        "name": row.name,
        "data": row.data,
        "timestamp": iso(row.timestamp),
        "received_at": iso(row.received_at),
    }


def list_events_page(
    request: Request,
    keyset: queries.Keyset,
    cursor: str | None,
    limit: int,
    application: str | None = None,
    **filters: Any,
) -> JSONBody:
    """A page of events in `keyset` order, as the list endpoints answer it."""
    return list_page(
        request,
        keyset,
        cursor,
        limit,
        application,
        lambda app_id: queries.select_events(application_id=app_id, **filters),
        event_json,
    )


Ordering = Literal["timestamp", "-timestamp"]


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Which events a list shows and in which order, as `GET /events/` and the console's
    explorer take them; a filter left None does not filter."""

    session: str | None = None
    category: str | None = None
    name: str | None = None
    application: str | None = None
    timestamp_gte: datetime | None = None
    timestamp_lte: datetime | None = None
    ordering: Ordering = "-timestamp"

    @classmethod
    def parse(
        cls,
        *,
        session: str | None,
        category: str | None,
        name: str | None,
        application: str | None,
        timestamp__gte: str | None,
        timestamp__lte: str | None,
        ordering: Ordering,
    ) -> EventQuery:
        """The query the list's parameters ask for; a `400 invalid_filter` for a time that
        is not ISO 8601."""
        return cls(
            session,
            category,
            name,
            application,
            time_filter(timestamp__gte, "timestamp__gte"),
            time_filter(timestamp__lte, "timestamp__lte"),
            ordering,
        )

    @property
    def keyset(self) -> queries.Keyset:
        if self.ordering == "timestamp":
            return queries.EVENTS_OLDEST_FIRST
        return queries.EVENTS_NEWEST_FIRST

    def select(self, application_id: int | None) -> sa.Select[Any]:
        return queries.select_events(
            session=self.session,
            category=self.category,
            name=self.name,
            application_id=application_id,
            timestamp_gte=self.timestamp_gte,
            timestamp_lte=self.timestamp_lte,
        )


@dataclass
class EventFilters:
    """The filters of `GET /events/` as query parameters, which its export takes too."""

    session: str | None = Query(None, description="Session id.")
    category: str | None = None
    name: str | None = None
    application: str | None = Query(None, description="Application name.")
    timestamp__gte: str | None = time_param()
    timestamp__lte: str | None = time_param()

    def query(self, ordering: Ordering) -> EventQuery:
        return EventQuery.parse(
            session=self.session,
            category=self.category,
            name=self.name,
            application=self.application,
            timestamp__gte=self.timestamp__gte,
            timestamp__lte=self.timestamp__lte,
            ordering=ordering,
        )


@router.get(
    "/events/",
    summary="List events",
    response_model=bodies.EventList,
    responses=LIST_ANSWERS,
)
def list_events(
    request: Request,
    filters: EventFilters = Depends(),
    ordering: Ordering = "-timestamp",
    limit: int = Limit,
    cursor: str | None = CursorParam,
) -> JSONBody:
    query = filters.query(ordering)
    return list_page(
        request, query.keyset, cursor, limit, query.application, query.select, event_json
    )


@router.get(
    "/events/export/",
    summary="Export events",
    response_class=StreamingResponse,
    responses=export_answers("event"),
)
def export_events(
    request: Request,
    filters: EventFilters = Depends(),
    format: Format = FormatParam,
) -> StreamingResponse:
    """Every event the filters of `GET /events/` match, in one streamed answer of any size,
    oldest first (by `timestamp`, then `id`). For files a warehouse loads incrementally,
    see `the-eye export`."""
    query = filters.query("timestamp")
    return export_response(
        request,
        format,
        EVENT_COLUMNS,
        query.keyset,
        query.application,
        lambda conn, app_id: query.select(app_id).with_only_columns(*exports.event_columns(conn)),
        "events",
    )


# The path names the row `id`, not the client's `event_id`: links from a list's `id` fit it.
# `:int`, so that `/events/export/` is never taken for an id.
@router.get("/events/{id:int}/", summary="One event", response_model=bodies.Event)
def get_event(request: Request, id: RowId) -> JSONBody:
    with state_of(request).engine.connect() as conn:
        row = queries.get_event(conn, id)
        if row is None:
            raise not_found("event")
        names = queries.application_names(conn)
    return JSONBody(event_json(row, names))


EDIT_EXAMPLE = {"timestamp": "2021-01-01 09:15:27", "data": {"host": "example.com", "path": "/"}}
PUT_EXAMPLE = {
    "session_id": "e2085be5-9137-4e4e-80b5-f1ffddc25423",
    "category": "page interaction",
    "name": "pageview",
    "data": {"host": "www.consumeraffairs.com", "path": "/"},
    "timestamp": "2021-01-01 09:15:27.243860",
}


def EditBody(example: dict[str, Any]) -> Any:
    """An edit's body: any JSON, read by `corrections`, documented as the object it must be."""
    return Body(examples=[example], json_schema_extra={"type": "object"})


def _edit(request: Request, event_id: RowId, body: Any, replace: bool) -> JSONBody:
    if "json" not in request.headers.get("content-type", ""):
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send the edit as a JSON object, with `Content-Type: application/json`.",
        )
    state = state_of(request)
    row = apply_edit(state, event_id, body, replace=replace)
    with state.engine.connect() as conn:
        names = queries.application_names(conn)
    return JSONBody(event_json(row, names))


def apply_edit(state: AppState, event_id: int, body: Any, *, replace: bool) -> AnyRow:
    """Edit event `event_id` with the decoded JSON `body` (PATCH, or PUT with `replace`)
    through the checks of a new event; the changed row, or an `ApiError` saying why not (the
    failing check's reason as its code), and then nothing is written."""
    if _holds_non_finite(body):
        # The edit's body is read by the standard library, which takes these; ingest's
        # reader refuses them, and the store would keep them as null.
        raise ApiError(
            400,
            "invalid_json",
            "The body is not valid JSON: `NaN`, `Infinity` and numbers out of range (such as "
            "`1e400`) are refused, as when events are sent.",
        )
    try:
        return corrections.edit_event(state.engine, event_id, body, state.checker, replace=replace)
    except corrections.EventNotFound:
        raise not_found("event") from None
    except corrections.EditInvalid as exc:
        raise ApiError(400, "invalid_request", str(exc)) from None
    except corrections.EditRejected as exc:
        rejected = exc.rejected
        raise ApiError(400, rejected.reason, rejected.message, rejected.details) from None
    except corrections.EventIdTaken as exc:
        raise ApiError(409, "conflict", str(exc)) from None


def _holds_non_finite(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


@router.patch(
    "/events/{id:int}/",
    summary="Change some fields of an event",
    dependencies=[AdminAccess],
    response_model=bodies.Event,
    responses=EDIT_ERRORS,
)
def patch_event(request: Request, id: RowId, body: Any = EditBody(EDIT_EXAMPLE)) -> JSONBody:
    """The changed event passes the same checks as a new one (else `400` with the reason);
    its sessions' first_seen, last_seen and event_count follow. `id`, `application` and
    `received_at` cannot change and are ignored."""
    return _edit(request, id, body, replace=False)


@router.put(
    "/events/{id:int}/",
    summary="Replace an event",
    dependencies=[AdminAccess],
    response_model=bodies.Event,
    responses=EDIT_ERRORS,
)
def put_event(request: Request, id: RowId, body: Any = EditBody(PUT_EXAMPLE)) -> JSONBody:
    """Like an event sent anew (`event_id` may be left out to keep the current one)."""
    return _edit(request, id, body, replace=True)


@router.delete(
    "/events/{id:int}/", status_code=204, summary="Delete an event", dependencies=[AdminAccess]
)
def delete_event(request: Request, id: RowId) -> Response:
    try:
        corrections.delete_event(state_of(request).engine, id)
    except corrections.EventNotFound:
        raise not_found("event") from None
    return Response(status_code=204)
