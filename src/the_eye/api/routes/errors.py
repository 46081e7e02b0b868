"""`/errors/`: what could not be stored, and why (read token)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from the_eye.api.auth import AdminAccess, ReadAccess
from the_eye.api.pagination import (
    CursorParam,
    Limit,
    RowId,
    iso,
    list_page,
    time_filter,
)
from the_eye.api.problems import ApiError, not_found
from the_eye.api.responses import JSONBody
from the_eye.api.state import state_of
from the_eye.services import replay
from the_eye.store import queries
from the_eye.store.tables import AnyRow

router = APIRouter(tags=["errors"], dependencies=[ReadAccess])


def error_json(row: AnyRow, names: dict[int, str]) -> dict[str, Any]:
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


@dataclass
class ErrorFilters:
    """The filters of `GET /errors/`, which bulk replay takes too."""

    reason: str | None = None
    application: str | None = Query(None, description="Application name.")
    received_at__gte: str | None = None
    received_at__lte: str | None = None
    replayed: bool | None = None

    def where(self, application_id: int | None) -> queries.ErrorFilter:
        """The store's filter for these query parameters and the application's id."""
        return queries.ErrorFilter(
            self.reason,
            application_id,
            time_filter(self.received_at__gte, "received_at__gte"),
            time_filter(self.received_at__lte, "received_at__lte"),
            self.replayed,
        )


@router.get("/errors/", summary="List errors")
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


@router.get("/errors/{error_id}/", summary="One error, with the raw payload")
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
)
def replay_errors(request: Request, filters: ErrorFilters = Depends()) -> JSONBody:
    """Runs the matching errors' raw events through processing again, in batches, with the
    schemas in force now. Those that pass become events; the others keep their record with
    the new reason; whole-body and already replayed errors are skipped."""
    state = state_of(request)
    app_id = None
    if filters.application is not None:
        with state.engine.connect() as conn:
            app_id = queries.application_id(conn, filters.application)
        if app_id is None:
            return JSONBody({"replayed": 0, "still_failing": 0, "skipped": 0})
    counts = replay.replay_errors(state.engine, filters.where(app_id), state.checker)
    return JSONBody(
        {
            "replayed": counts.replayed,
            "still_failing": counts.still_failing,
            "skipped": counts.skipped,
        }
    )


@router.post("/errors/{error_id}/replay/", summary="Replay one error", dependencies=[AdminAccess])
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
