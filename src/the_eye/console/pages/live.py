"""Live events: the newest stored events, following new ones as they are stored.

The page shows the newest events (by id, as they were stored) and polls every couple of
seconds for rows above the newest it shows (`/console/live/rows/?after=ID`), which it puts on
top; Pause stops the polling. Filters (application, category, name) narrow both; filtered,
only the newest `LOOK_BACK` stored events are looked through, so a rare type costs a bounded
walk, never the whole table (the event list searches further back).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from the_eye.api.pagination import MAX_ID
from the_eye.api.state import state_of
from the_eye.console.auth import ConsoleUser, Viewer
from the_eye.console.templating import render, session_url
from the_eye.store.live import LOOK_BACK, LiveFilter, LiveRows, newest_events
from the_eye.store.queries import application_names
from the_eye.store.tables import AnyRow

router = APIRouter(prefix="/console/live", include_in_schema=False)

ROWS = 50  # shown at first, and the most one poll brings
KEPT_ROWS = 200  # the page drops older rows past this many (live.js)
POLL_SECONDS = 2
PREVIEW_CHARACTERS = 120


@dataclass(frozen=True, slots=True)
class LiveRow:
    """One event as a row of the live table."""

    id: int
    timestamp: datetime
    received_at: datetime
    application: str
    session_id: str
    session_url: str
    category: str
    name: str
    preview: str


def preview(data: Any) -> str:
    """The event's data as compact JSON, cut to `PREVIEW_CHARACTERS` (escaped when shown)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    if len(text) <= PREVIEW_CHARACTERS:
        return text
    return text[: PREVIEW_CHARACTERS - 1] + "…"


def live_row(row: AnyRow, names: dict[int, str]) -> LiveRow:
    return LiveRow(
        id=row.id,
        timestamp=row.timestamp,
        received_at=row.received_at,
        application=names.get(row.application_id, str(row.application_id)),
        session_id=row.session_id,
        session_url=session_url(row.session_id),
        category=row.category,
        name=row.name,
        preview=preview(row.data),
    )


@dataclass(frozen=True, slots=True)
class Filters:
    """The filters as the page's form sent them (empty: not filtering)."""

    application: str
    category: str
    name: str

    def query(self) -> str:
        """The filters as a query string, for the polling URL."""
        pairs = {
            k: v
            for k, v in (
                ("application", self.application),
                ("category", self.category),
                ("name", self.name),
            )
            if v
        }
        return urlencode(pairs)


# A filter's text, as the form sends it (empty: not filtering).
Text = Annotated[str, Query(max_length=100)]


def filters_of(application: Text = "", category: Text = "", name: Text = "") -> Filters:
    """The filters of the query string, for both the page and its polling."""
    return Filters(application.strip(), category.strip(), name.strip())


Filtered = Depends(filters_of)


@dataclass(frozen=True, slots=True)
class LiveView:
    """What the page shows: the rows found (None when the filters name no application), as
    table rows, the application names for the form, and a problem with the filters."""

    found: LiveRows | None
    rows: list[LiveRow]
    applications: list[str]
    problem: str | None = None


def _read(request: Request, filters: Filters, after: int | None) -> LiveView:
    with state_of(request).engine.connect() as conn:
        names = application_names(conn)
        applications = sorted(names.values())
        application_id = None
        if filters.application:
            ids = [i for i, n in names.items() if n == filters.application]
            if not ids:
                problem = f"No application is named {filters.application!r}."
                return LiveView(None, [], applications, problem)
            application_id = ids[0]
        where = LiveFilter(application_id, filters.category or None, filters.name or None)
        found = newest_events(conn, where, after, ROWS)
    return LiveView(found, [live_row(row, names) for row in found.rows], applications)


@router.get("/")
def live(
    request: Request,
    user: ConsoleUser = Viewer,
    filters: Filters = Filtered,
) -> HTMLResponse:
    view = _read(request, filters, None)
    return render(
        request,
        user,
        "live.html",
        {
            "nav": "live",
            "filters": filters,
            "applications": view.applications,
            "problem": view.problem,
            "rows": view.rows,
            "newest_id": view.found.newest_id if view.found else 0,
            "poll_url": f"/console/live/rows/?{filters.query()}",
            "poll_seconds": POLL_SECONDS,
            "kept_rows": KEPT_ROWS,
            "look_back": LOOK_BACK,
            "more": False,
        },
        status_code=400 if view.problem else 200,
    )


@router.get("/rows/")
def live_rows(
    request: Request,
    user: ConsoleUser = Viewer,
    filters: Filters = Filtered,
    after: int = Query(0, ge=0, le=MAX_ID),
) -> Response:
    """The rows above `after`, newest first, to put on top of the table; 204 when none."""
    view = _read(request, filters, after)
    if view.found is None or not view.rows:
        return Response(status_code=204)
    return render(request, user, "live_rows.html", {"rows": view.rows, "more": view.found.more})
