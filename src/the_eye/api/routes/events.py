"""`/events/`: query stored events (read token)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request

from the_eye.api.auth import ReadAccess
from the_eye.api.pagination import (
    CursorParam,
    Limit,
    clamp,
    decode_cursor,
    iso,
    page_response,
    time_filter,
)
from the_eye.api.problems import not_found
from the_eye.api.responses import JSONBody
from the_eye.store import queries

router = APIRouter(tags=["events"], dependencies=[ReadAccess])


def event_json(row, names: dict[int, str]) -> dict:
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


def list_events_page(request: Request, keyset: queries.Keyset, cursor, limit: int, **filters):
    """A page of events in `keyset` order, as the list endpoints answer it."""
    after = decode_cursor(cursor, keyset)
    with request.app.state.engine.connect() as conn:
        names = queries.application_names(conn)
        app_name = filters.pop("application", None)
        app_id = None
        if app_name is not None:
            app_id = queries.application_id(conn, app_name)
            if app_id is None:
                return page_response(request, [], keyset, None)
        stmt = queries.select_events(application_id=app_id, **filters)
        rows, position = queries.page(conn, stmt, keyset, after, clamp(limit))
    return page_response(request, [event_json(r, names) for r in rows], keyset, position)


@router.get("/events/", summary="List events")
def list_events(
    request: Request,
    session: str | None = Query(None, description="Session id."),
    category: str | None = None,
    name: str | None = None,
    application: str | None = Query(None, description="Application name."),
    timestamp__gte: str | None = Query(None, description="ISO 8601, inclusive."),
    timestamp__lte: str | None = Query(None, description="ISO 8601, inclusive."),
    ordering: Literal["timestamp", "-timestamp"] = "-timestamp",
    limit: int = Limit,
    cursor: str | None = CursorParam,
) -> JSONBody:
    keyset = queries.EVENTS_OLDEST_FIRST if ordering == "timestamp" else queries.EVENTS_NEWEST_FIRST
    return list_events_page(
        request,
        keyset,
        cursor,
        limit,
        session=session,
        category=category,
        name=name,
        application=application,
        timestamp_gte=time_filter(timestamp__gte, "timestamp__gte"),
        timestamp_lte=time_filter(timestamp__lte, "timestamp__lte"),
    )


@router.get("/events/{event_id}/", summary="One event")
def get_event(request: Request, event_id: int) -> JSONBody:
    with request.app.state.engine.connect() as conn:
        row = queries.get_event(conn, event_id)
        if row is None:
            raise not_found("event")
        names = queries.application_names(conn)
    return JSONBody(event_json(row, names))
