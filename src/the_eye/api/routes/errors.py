"""`/errors/`: what could not be stored, and why (read token)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.engine import Connection
from starlette.responses import StreamingResponse

from the_eye.api import bodies
from the_eye.api.auth import AdminAccess, ReadAccess
from the_eye.api.bodies import ErrorReason
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
from the_eye.api.state import state_of
from the_eye.export.formats import ERROR_COLUMNS, Format
from the_eye.services import replay
from the_eye.store import exports, queries
from the_eye.store.tables import AnyRow

router = APIRouter(tags=["errors"], dependencies=[ReadAccess])


def error_json(row: AnyRow, names: dict[int, str]) -> dict[str, Any]:
    return {
        "id": row.id,
        "reason": row.reason,
        "message": row.message,
        "details": row.details,
        "event_id": row.event_id,
        "session_id": row.session_id,
        "category": row.category,
        "name": row.name,
        "application": names.get(row.application_id),
        "received_at": iso(row.received_at),
        "replayed": row.replayed,
        "replayed_event": row.replayed_event_id,
    }


@dataclass
class ErrorFilters:
    """The filters of `GET /errors/`, which bulk replay takes too."""

    reason: ErrorReason | None = None
    application: str | None = Query(None, description="Application name.")
    received_at__gte: str | None = time_param()
    received_at__lte: str | None = time_param()
    replayed: bool | None = None
    session: str | None = Query(None, description="The raw event's session id.")
    category: str | None = Query(None, description="The raw event's category.")
    name: str | None = Query(None, description="The raw event's name.")

    def __post_init__(self) -> None:
        # A time that does not parse is a 400 even when nothing could match (an unknown
        # application answers before the filters are used).
        self.where(None)

    def resolve(self, conn: Connection) -> queries.ErrorFilter | None:
        """The store's filter, with the application looked up by name; None when no
        application has that name (nothing matches)."""
        app_id = None
        if self.application is not None:
            app_id = queries.application_id(conn, self.application)
            if app_id is None:
                return None
        return self.where(app_id)

    def where(self, application_id: int | None) -> queries.ErrorFilter:
        """The store's filter for these query parameters and the application's id."""
        return queries.ErrorFilter(
            self.reason,
            application_id,
            time_filter(self.received_at__gte, "received_at__gte"),
            time_filter(self.received_at__lte, "received_at__lte"),
            self.replayed,
            self.session,
            self.category,
            self.name,
        )


@router.get(
    "/errors/",
    summary="List errors",
    response_model=bodies.ErrorRecordList,
    responses=LIST_ANSWERS,
)
def list_errors(
    request: Request,
    filters: ErrorFilters = Depends(),
    limit: int = Limit,
    cursor: str | None = CursorParam,
) -> JSONBody:
    return list_page(
        request,
        queries.ERRORS_NEWEST_FIRST,
        cursor,
        limit,
        filters.application,
        lambda app_id: queries.select_errors(filters.where(app_id)),
        error_json,
    )


@router.get(
    "/errors/export/",
    summary="Export errors",
    response_class=StreamingResponse,
    responses=export_answers("error"),
)
def export_errors(
    request: Request, filters: ErrorFilters = Depends(), format: Format = FormatParam
) -> StreamingResponse:
    """Every error the filters of `GET /errors/` match (without raw payloads), in one
    streamed answer of any size, oldest first (by `received_at`, then `id`)."""
    return export_response(
        request,
        format,
        ERROR_COLUMNS,
        queries.ERRORS_OLDEST_FIRST,
        filters.application,
        lambda conn, app_id: queries.select_errors(filters.where(app_id)).with_only_columns(
            *exports.error_columns(conn)
        ),
        "errors",
    )


# `:int`, so that `GET /errors/replay/` is a 405, not an error id that does not parse.
@router.get(
    "/errors/{error_id:int}/",
    summary="One error, with the raw payload",
    response_model=bodies.ErrorRecordWithPayload,
)
def get_error(request: Request, error_id: RowId) -> JSONBody:
    with state_of(request).engine.connect() as conn:
        row = queries.get_error(conn, error_id)
        if row is None:
            raise not_found("error")
        names = queries.application_names(conn)
    return JSONBody({**error_json(row, names), "payload": row.payload})


@router.post(
    "/errors/replay/",
    summary="Replay every error the filters match",
    dependencies=[AdminAccess],
    response_model=bodies.ReplayCounts,
    responses=answers({400: "`invalid_filter`: a time filter that is not ISO 8601."}),
)
def replay_errors(request: Request, filters: ErrorFilters = Depends()) -> JSONBody:
    """Runs the matching errors' raw events through processing again, in batches, with the
    schemas in force now. Those that pass become events; the others keep their record with
    the new reason; whole-body and already replayed errors are skipped."""
    state = state_of(request)
    with state.engine.connect() as conn:
        where = filters.resolve(conn)
    if where is None:
        return JSONBody({"replayed": 0, "still_failing": 0, "skipped": 0})
    counts = replay.replay_errors(state.engine, where, state.checker)
    return JSONBody(
        {
            "replayed": counts.replayed,
            "still_failing": counts.still_failing,
            "skipped": counts.skipped,
        }
    )


@router.post(
    "/errors/{error_id}/replay/",
    summary="Replay one error",
    dependencies=[AdminAccess],
    response_model=bodies.ReplayedError,
    responses=answers({409: "`not_replayable`: a whole-body error, which holds no event."}),
)
def replay_error(request: Request, error_id: RowId) -> JSONBody:
    """Answers the error as it is afterwards, with `outcome`: `replayed` (see
    `replayed_event`), `still_failing` (see the new `reason`) or `already_replayed`."""
    state = state_of(request)
    try:
        outcome = replay.replay_error(state.engine, error_id, state.checker)
    except replay.ErrorNotFound:
        raise not_found("error") from None
    if outcome.outcome == "not_replayable":
        raise ApiError(
            409,
            "not_replayable",
            "This error keeps a whole request body, not one event; it cannot become an event.",
        )
    with state.engine.connect() as conn:
        row = queries.get_error(conn, error_id)
        names = queries.application_names(conn)
    if row is None:  # deleted meanwhile (by retention)
        raise not_found("error")
    return JSONBody({**error_json(row, names), "outcome": outcome.outcome})
