"""A session's timeline: its first and last seen and event count (the `sessions` row), and
its events in the order they happened with the time since the one before, paged through the
(session, timestamp) index with the API's cursors. Admins erase a session (and its events)
as `DELETE /sessions/{id}/` does.

A session id may hold any character: links escape it into one path segment, and the few ids
a path cannot carry are asked for as `/console/sessions/?id=...` (see `session_url`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from the_eye.api.pagination import read_page
from the_eye.api.problems import ApiError, not_found
from the_eye.api.state import state_of
from the_eye.console.auth import ConsoleUser, Editor, Viewer
from the_eye.console.pages.events import EXPLORER, explorer_url, page_size
from the_eye.console.templating import render, session_url
from the_eye.services import corrections
from the_eye.store import queries

router = APIRouter(prefix="/console", include_in_schema=False)

TIMELINE_PAGE_SIZE = "100"


def elapsed(delta: timedelta) -> str:
    """A time between two events, as a person reads it: `+1.25 s`, `+3 min 5 s`, `+2 h 10 min`."""
    seconds = delta.total_seconds()
    if seconds < 60:
        return "+" + f"{seconds:.3f}".rstrip("0").rstrip(".") + " s"
    whole = int(seconds)
    for unit, size, smaller, smaller_size in (
        ("d", 86400, "h", 3600),
        ("h", 3600, "min", 60),
        ("min", 60, "s", 1),
    ):
        if whole >= size:
            return f"+{whole // size} {unit} {whole % size // smaller_size} {smaller}"
    raise AssertionError("unreachable")


def _gaps(timestamps: list[datetime], before: datetime | None) -> list[str | None]:
    """The time since the previous event for each of these, in order; None for the session's
    first event (`before` is the last event of the previous page, if any)."""
    gaps: list[str | None] = []
    previous = before
    for timestamp in timestamps:
        gaps.append(None if previous is None else elapsed(timestamp - previous))
        previous = timestamp
    return gaps


def _timeline(
    request: Request, user: ConsoleUser, session_id: str, cursor: str, limit: str
) -> HTMLResponse:
    state = state_of(request)
    with state.engine.connect() as conn:
        session = queries.get_session(conn, session_id)
    if session is None:
        raise not_found("session")
    events: list[tuple[Any, str | None]] = []
    names: dict[int, str] = {}
    next_url = None
    problem = None
    try:
        found = read_page(
            state.engine,
            queries.EVENTS_OLDEST_FIRST,
            cursor or None,
            page_size(limit),
            None,
            lambda _: queries.select_events(session=session_id),
        )
    except ApiError as exc:
        problem = exc
    else:
        before = found.after[0] if found.after else None
        gaps = _gaps([row.timestamp for row in found.rows], before)
        events = list(zip(found.rows, gaps, strict=True))
        names = found.names
        if found.next_cursor is not None:
            next_url = session_url(session_id, limit=limit, cursor=found.next_cursor)
    duration = None
    if session.first_seen is not None and session.last_seen is not None:
        duration = elapsed(session.last_seen - session.first_seen).lstrip("+")
    return render(
        request,
        user,
        "session.html",
        {
            "nav": "events",
            "session": session,
            "explorer_url": explorer_url(session=session_id),
            "duration": duration,
            "events": events,
            "names": names,
            "problem": problem,
            "next_url": next_url,
            "first_page_url": None if not cursor else session_url(session_id, limit=limit),
        },
        status_code=problem.status if problem else 200,
    )


@router.get("/sessions/")
def timeline_by_query(
    request: Request,
    user: ConsoleUser = Viewer,
    id: str = Query(),
    cursor: str = "",
    limit: str = TIMELINE_PAGE_SIZE,
) -> HTMLResponse:
    """The timeline of a session whose id a path cannot carry."""
    return _timeline(request, user, id, cursor, limit)


@router.post("/sessions/erase/")
def erase_session(
    request: Request, user: ConsoleUser = Editor, session_id: str = Form()
) -> Response:
    try:
        corrections.erase_session(state_of(request).engine, session_id)
    except corrections.SessionNotFound:
        raise not_found("session") from None
    return RedirectResponse(f"{EXPLORER}?{urlencode({'erased': session_id})}", status_code=303)


# Last: the id is the rest of the path, so that an id holding `/` (escaped in links, decoded
# by the server before routing) still names one session.
@router.get("/sessions/{session_id:path}/")
def timeline(
    request: Request,
    session_id: str,
    user: ConsoleUser = Viewer,
    cursor: str = "",
    limit: str = TIMELINE_PAGE_SIZE,
) -> HTMLResponse:
    return _timeline(request, user, session_id, cursor, limit)
