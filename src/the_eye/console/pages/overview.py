"""The console's first page: what arrived and what failed lately, and what waits in the queue.

Counts come from the rollups that `/stats/` reads (a few rows per minute or hour, never a
count over the events table): events by their timestamp and open errors by when they were
received, per minute over the last hour and per hour over the last day, with every bucket
present (0 when nothing fell in it). The backlog comes from the queue, as `/metrics` reports
it. An htmx request (the page polling itself) gets the panel alone, to swap in.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.engine import Connection

from the_eye.api.routes.operations import backlog
from the_eye.api.state import state_of
from the_eye.console.auth import ConsoleUser, Viewer
from the_eye.console.templating import is_htmx, render
from the_eye.store.stats import BUCKET_MINUTES, Stats, minute_of, read_stats, start_of
from the_eye.timestamps import utcnow

router = APIRouter(prefix="/console", include_in_schema=False)

# How often the page asks for a fresh panel.
REFRESH_SECONDS = 5


@dataclass(frozen=True, slots=True)
class Series:
    """Events and errors per bucket over a stretch of time, oldest bucket first, as a chart
    draws them: `times` in seconds since 1970 (UTC), one count of each per bucket."""

    title: str
    bucket: str
    times: list[int]
    events: list[int]
    errors: list[int]

    @property
    def total_events(self) -> int:
        return sum(self.events)

    @property
    def total_errors(self) -> int:
        return sum(self.errors)

    def chart_data(self) -> list[list[int]]:
        return [self.times, self.events, self.errors]


def per_bucket(
    conn: Connection, title: str, bucket: str, buckets: int, now: datetime
) -> tuple[Series, Stats]:
    """The last `buckets` whole buckets up to the one holding `now` (that one partial)."""
    width = BUCKET_MINUTES[bucket]
    current = minute_of(now) // width * width
    starts = [current - width * i for i in reversed(range(buckets))]
    stats = read_stats(
        conn,
        timestamp_gte=start_of(starts[0]),
        timestamp_lte=now,
        application_id=None,
        bucket=bucket,
    )
    events = [sum(stats.events.get(start, Counter()).values()) for start in starts]
    errors = [sum(stats.errors.get(start, Counter()).values()) for start in starts]
    times = [start * 60 for start in starts]
    return Series(title, bucket, times, events, errors), stats


def _panel(request: Request) -> dict[str, object]:
    state = state_of(request)
    now = utcnow()
    with state.engine.connect() as conn:
        hour, _ = per_bucket(conn, "Last hour, per minute", "minute", 60, now)
        day, day_stats = per_bucket(conn, "Last 24 hours, per hour", "hour", 24, now)
    events, errors = day_stats.totals()
    return {
        "nav": "overview",
        "refresh_seconds": REFRESH_SECONDS,
        "charts": [hour, day],
        "events_by_type": events.most_common(),
        "errors_by_reason": errors.most_common(),
        "backlog": backlog(state),
        "as_of": now.replace(microsecond=0),
    }


@router.get("/")
def overview(request: Request, user: ConsoleUser = Viewer) -> HTMLResponse:
    if is_htmx(request):
        return render(request, user, "overview_panel.html", _panel(request))
    return render(request, user, "overview.html", _panel(request))
