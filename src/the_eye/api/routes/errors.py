"""`/errors/`: what could not be stored, and why (read token)."""

from __future__ import annotations

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

router = APIRouter(tags=["errors"], dependencies=[ReadAccess])


def error_json(row, names: dict[int, str]) -> dict:
    return {
        "id": row.id,
        "reason": row.reason,
        "message": row.message,
        "details": row.details,
        "event_id": row.event_id,
        "application": names.get(row.application_id),
        "received_at": iso(row.received_at),
        "replayed": row.replayed,
        "replayed_event": row.replayed_event_id,
    }


@router.get("/errors/", summary="List errors")
def list_errors(
    request: Request,
    reason: str | None = None,
    application: str | None = Query(None, description="Application name."),
    received_at__gte: str | None = None,
    received_at__lte: str | None = None,
    replayed: bool | None = None,
    limit: int = Limit,
    cursor: str | None = CursorParam,
) -> JSONBody:
    keyset = queries.ERRORS_NEWEST_FIRST
    after = decode_cursor(cursor, keyset)
    gte = time_filter(received_at__gte, "received_at__gte")
    lte = time_filter(received_at__lte, "received_at__lte")
    with request.app.state.engine.connect() as conn:
        names = queries.application_names(conn)
        app_id = None
        if application is not None:
            app_id = queries.application_id(conn, application)
            if app_id is None:
                return page_response(request, [], keyset, None)
        stmt = queries.select_errors(
            reason=reason,
            application_id=app_id,
            received_at_gte=gte,
            received_at_lte=lte,
            replayed=replayed,
        )
        rows, position = queries.page(conn, stmt, keyset, after, clamp(limit))
    return page_response(request, [error_json(r, names) for r in rows], keyset, position)


@router.get("/errors/{error_id}/", summary="One error, with the raw payload")
def get_error(request: Request, error_id: int) -> JSONBody:
    with request.app.state.engine.connect() as conn:
        row = queries.get_error(conn, error_id)
        if row is None:
            raise not_found("error")
        names = queries.application_names(conn)
    return JSONBody({**error_json(row, names), "payload": row.payload})
