"""`/sessions/`: sessions and their timelines."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Query, Request, Response

from the_eye.api import bodies
from the_eye.api.auth import AdminAccess, ReadAccess, SenderAccess
from the_eye.api.pagination import (
    LIST_ANSWERS,
    CursorParam,
    Limit,
    iso,
    list_page,
    time_filter,
    time_param,
)
from the_eye.api.problems import not_found
from the_eye.api.responses import JSONBody
from the_eye.api.routes.events import list_events_page
from the_eye.api.state import state_of
from the_eye.services import corrections
from the_eye.store import queries
from the_eye.store import sessions as store
from the_eye.store.tables import AnyRow
from the_eye.timestamps import utcnow

router = APIRouter(tags=["sessions"])


def session_json(row: AnyRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "first_seen": iso(row.first_seen),
        "last_seen": iso(row.last_seen),
        "event_count": row.event_count,
    }


@router.post(
    "/sessions/",
    status_code=201,
    summary="Make a session id",
    dependencies=[SenderAccess],
    response_model=bodies.NewSession,
)
def create_session(request: Request) -> JSONBody:
    """For applications that let The Eye choose their session ids."""
    session_id = str(uuid.uuid4())
    with state_of(request).engine.begin() as conn:
        store.create_sessions(conn, [session_id], utcnow())
    return JSONBody({"id": session_id}, status_code=201)


@router.get(
    "/sessions/",
    summary="List sessions",
    dependencies=[ReadAccess],
    response_model=bodies.SessionList,
    responses=LIST_ANSWERS,
)
def list_sessions(
    request: Request,
    application: str | None = Query(None, description="Application name."),
    last_seen__gte: str | None = time_param(),
    last_seen__lte: str | None = time_param(),
    limit: int = Limit,
    cursor: str | None = CursorParam,
) -> JSONBody:
    gte = time_filter(last_seen__gte, "last_seen__gte")
    lte = time_filter(last_seen__lte, "last_seen__lte")
    return list_page(
        request,
        queries.SESSIONS_NEWEST_FIRST,
        cursor,
        limit,
        application,
        lambda app_id: queries.select_sessions(
            application_id=app_id, last_seen_gte=gte, last_seen_lte=lte
        ),
        lambda row, _names: session_json(row),
    )


@router.get(
    "/sessions/{session_id}/",
    summary="One session",
    dependencies=[ReadAccess],
    response_model=bodies.Session,
)
def get_session(request: Request, session_id: str) -> JSONBody:
    with state_of(request).engine.connect() as conn:
        row = queries.get_session(conn, session_id)
    if row is None:
        raise not_found("session")
    return JSONBody(session_json(row))


@router.get(
    "/sessions/{session_id}/events/",
    summary="A session's events in the order they happened",
    dependencies=[ReadAccess],
    response_model=bodies.EventList,
    responses=LIST_ANSWERS,
)
def session_events(
    request: Request, session_id: str, limit: int = Limit, cursor: str | None = CursorParam
) -> JSONBody:
    """`404` for a session that does not exist (or was erased), as `GET /sessions/{id}/`."""
    with state_of(request).engine.connect() as conn:
        if queries.get_session(conn, session_id) is None:
            raise not_found("session")
    return list_events_page(request, queries.EVENTS_OLDEST_FIRST, cursor, limit, session=session_id)


@router.delete(
    "/sessions/{session_id}/",
    status_code=204,
    summary="Erase a session and its events",
    dependencies=[AdminAccess],
)
def delete_session(request: Request, session_id: str) -> Response:
    try:
        corrections.erase_session(state_of(request).engine, session_id)
    except corrections.SessionNotFound:
        raise not_found("session") from None
    return Response(status_code=204)
