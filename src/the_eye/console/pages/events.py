"""The event explorer and the event page: find stored events, read one, and (admins) edit or
delete it.

The explorer takes the filters and order of `GET /events/` under the same names, pages
through the same indexed keyset query with the same cursors, and shows a filter it cannot
read as a message above the form. An edit is the event's JSON, changed in a text area and
applied as `PATCH /events/{id}/` applies it (the same checks, the same reasons); a failing
edit comes back in the form with its reason and the text as it was typed.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from the_eye.api.pagination import MAX_LIMIT, RowId, read_page
from the_eye.api.problems import ApiError, not_found
from the_eye.api.routes.events import EventQuery, Ordering, apply_edit
from the_eye.api.state import state_of
from the_eye.console.auth import ConsoleUser, Editor, Viewer
from the_eye.console.templating import render
from the_eye.services import corrections
from the_eye.store import queries
from the_eye.store.tables import AnyRow
from the_eye.timestamps import format_timestamp

router = APIRouter(prefix="/console", include_in_schema=False)

EXPLORER = "/console/events/"
ORDERINGS: dict[str, str] = {"-timestamp": "Newest first", "timestamp": "Oldest first"}
PAGE_SIZES = (25, 50, 100, 200)
FILTERS = ("application", "session", "category", "name", "timestamp__gte", "timestamp__lte")


def page_size(value: str) -> int:
    """A list's page size from the query (1 to the API's maximum), or a `400 invalid_filter`."""
    if value.isascii() and value.isdigit() and 1 <= int(value) <= MAX_LIMIT:
        return int(value)
    raise ApiError(400, "invalid_filter", f"`limit` must be a whole number from 1 to {MAX_LIMIT}.")


def _ordering(value: str) -> Ordering:
    if value == "timestamp":
        return "timestamp"
    if value == "-timestamp":
        return "-timestamp"
    raise ApiError(400, "invalid_filter", "`ordering` must be `timestamp` or `-timestamp`.")


def event_url(event_id: int) -> str:
    return f"{EXPLORER}{event_id}/"


def explorer_url(**params: str | None) -> str:
    """The explorer with these filters (empty ones left out)."""
    given = {key: value for key, value in params.items() if value}
    return f"{EXPLORER}?{urlencode(given)}" if given else EXPLORER


@router.get("/events/")
def explorer(
    request: Request,
    user: ConsoleUser = Viewer,
    application: str = "",
    session: str = "",
    category: str = "",
    name: str = "",
    timestamp__gte: str = "",
    timestamp__lte: str = "",
    ordering: str = "-timestamp",
    limit: str = "50",
    cursor: str = "",
    deleted: int | None = None,
    erased: str | None = None,
) -> HTMLResponse:
    state = state_of(request)
    form = {
        "application": application,
        "session": session,
        "category": category,
        "name": name,
        "timestamp__gte": timestamp__gte,
        "timestamp__lte": timestamp__lte,
        "ordering": ordering,
        "limit": limit,
    }
    with state.engine.connect() as conn:
        applications = sorted(queries.application_names(conn).values())
    rows: list[AnyRow] = []
    names: dict[int, str] = {}
    next_url = None
    problem = None
    try:
        query = EventQuery.parse(
            session=session or None,
            category=category or None,
            name=name or None,
            application=application or None,
            timestamp__gte=timestamp__gte or None,
            timestamp__lte=timestamp__lte or None,
            ordering=_ordering(ordering),
        )
        found = read_page(
            state.engine,
            query.keyset,
            cursor or None,
            page_size(limit),
            query.application,
            query.select,
        )
    except ApiError as exc:
        problem = exc
    else:
        rows, names = list(found.rows), found.names
        if found.next_cursor is not None:
            next_url = explorer_url(**form, cursor=found.next_cursor)
    return render(
        request,
        user,
        "events.html",
        {
            "nav": "events",
            "form": form,
            "applications": applications,
            "orderings": ORDERINGS,
            "page_sizes": PAGE_SIZES,
            "rows": rows,
            "names": names,
            "problem": problem,
            "next_url": next_url,
            "first_page": not cursor,
            "first_page_url": explorer_url(**form),
            "filtered": any(form[key] for key in FILTERS),
            "deleted": deleted,
            "erased": erased,
        },
        status_code=problem.status if problem else 200,
    )


def editable_json(row: AnyRow) -> str:
    """The fields of an event an edit may change, as the JSON text the edit form starts with."""
    fields: dict[str, Any] = {
        "event_id": row.event_id,
        "session_id": row.session_id,
        "category": row.category,
        "name": row.name,
        "timestamp": format_timestamp(row.timestamp),
        "data": row.data,
    }
    return json.dumps(fields, indent=2, ensure_ascii=False)


def _event_page(
    request: Request,
    user: ConsoleUser,
    event_id: int,
    *,
    edit_text: str | None = None,
    edit_problem: ApiError | None = None,
    saved: bool = False,
) -> HTMLResponse:
    state = state_of(request)
    with state.engine.connect() as conn:
        row = queries.get_event(conn, event_id)
        if row is None:
            raise not_found("event")
        names = queries.application_names(conn)
    return render(
        request,
        user,
        "event.html",
        {
            "nav": "events",
            "event": row,
            "application": names.get(row.application_id),
            "type_url": explorer_url(category=row.category, name=row.name),
            "edit_text": editable_json(row) if edit_text is None else edit_text,
            "edit_problem": edit_problem,
            "saved": saved,
        },
        status_code=edit_problem.status if edit_problem else 200,
    )


@router.get("/events/{event_id}/")
def event_page(
    request: Request, event_id: RowId, user: ConsoleUser = Viewer, saved: bool = False
) -> HTMLResponse:
    return _event_page(request, user, event_id, saved=saved)


@router.post("/events/{event_id}/edit/")
def edit_event(
    request: Request, event_id: RowId, user: ConsoleUser = Editor, event: str = Form("")
) -> Response:
    try:
        body = json.loads(event)
    except (ValueError, RecursionError) as exc:
        problem = ApiError(400, "invalid_json", f"The text is not valid JSON: {exc}.")
    else:
        try:
            apply_edit(state_of(request), event_id, body, replace=False)
        except ApiError as exc:
            if exc.status == 404:
                raise
            problem = exc
        else:
            return RedirectResponse(f"{event_url(event_id)}?saved=true", status_code=303)
    return _event_page(request, user, event_id, edit_text=event, edit_problem=problem)


@router.post("/events/{event_id}/delete/")
def delete_event(request: Request, event_id: RowId, user: ConsoleUser = Editor) -> Response:
    try:
        corrections.delete_event(state_of(request).engine, event_id)
    except corrections.EventNotFound:
        raise not_found("event") from None
    return RedirectResponse(f"{EXPLORER}?deleted={event_id}", status_code=303)
