"""The console's first page: what arrived and what failed lately, and what waits in the queue.

Counts come from the rollups that `/stats/` reads (a few rows per hour, never a count over the
events table), the backlog from the queue, as `/metrics` reports them.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from the_eye.api.routes.operations import backlog
from the_eye.api.state import state_of
from the_eye.console.auth import ConsoleUser, Viewer
from the_eye.console.templating import render
from the_eye.store.stats import read_stats
from the_eye.timestamps import utcnow

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/")
def overview(request: Request, user: ConsoleUser = Viewer) -> HTMLResponse:
    state = state_of(request)
    now = utcnow()
    with state.engine.connect() as conn:
        day = read_stats(
            conn,
            timestamp_gte=now - timedelta(days=1),
            timestamp_lte=now,
            application_id=None,
            bucket=None,
        )
    events, errors = day.totals()
    return render(
        request,
        user,
        "overview.html",
        {
            "nav": "overview",
            "events_by_type": events.most_common(),
            "errors_by_reason": errors.most_common(),
            "backlog": backlog(state),
        },
    )
