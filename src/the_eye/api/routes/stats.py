"""`/stats/`: how many events of each type and errors of each reason, per time bucket."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from sqlalchemy.engine import Connection

from the_eye.api import bodies
from the_eye.api.auth import ReadAccess
from the_eye.api.openapi import answers
from the_eye.api.pagination import iso, time_filter, time_param
from the_eye.api.problems import ApiError
from the_eye.api.responses import JSONBody
from the_eye.api.state import state_of
from the_eye.store import queries
from the_eye.store.stats import BUCKET_MINUTES, Stats, extent, read_stats, start_of

router = APIRouter(tags=["stats"], dependencies=[ReadAccess])

MAX_BUCKETS = 10_000


def _events(counts: Counter[tuple[str, str]]) -> list[dict[str, Any]]:
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [{"category": c, "name": n, "count": k} for (c, n), k in ordered if k]


def _errors(counts: Counter[str]) -> list[dict[str, Any]]:
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [{"reason": r, "count": k} for r, k in ordered if k]


def stats_json(stats: Stats, bucketed: bool) -> dict[str, Any]:
    totals_events, totals_errors = stats.totals()
    buckets = []
    if bucketed:
        # Bucketed stats are keyed by bucket start only (None is the key of unbucketed ones).
        starts = {s for s in (*stats.events, *stats.errors) if s is not None}
        for start in sorted(starts):
            events = _events(stats.events.get(start, Counter()))
            errors = _errors(stats.errors.get(start, Counter()))
            if events or errors:
                buckets.append({"start": iso(start_of(start)), "events": events, "errors": errors})
    return {
        "totals": {"events": _events(totals_events), "errors": _errors(totals_errors)},
        "buckets": buckets,
    }


@router.get(
    "/stats/",
    summary="Counts of events by type and of errors by reason",
    response_model=bodies.Stats,
    responses=answers(
        {
            400: "`invalid_filter`: a time filter that is not ISO 8601, `bucket=minute` "
            f"without both bounds, or more than {MAX_BUCKETS} buckets."
        }
    ),
)
def stats(
    request: Request,
    timestamp__gte: str | None = time_param(),
    timestamp__lte: str | None = time_param(),
    application: str | None = Query(None, description="Application name."),
    bucket: Literal["minute", "hour", "day"] | None = Query(
        None, description="Split the counts into buckets of this width (UTC)."
    ),
) -> JSONBody:
    """Events count by their `timestamp`, errors by their `received_at`; errors that were
    replayed into events no longer count as errors. Buckets with nothing in them are left
    out; `start` names a bucket by its first instant."""
    gte = time_filter(timestamp__gte, "timestamp__gte")
    lte = time_filter(timestamp__lte, "timestamp__lte")
    if bucket == "minute" and (gte is None or lte is None):
        raise ApiError(
            400,
            "invalid_filter",
            "`bucket=minute` needs both `timestamp__gte` and `timestamp__lte`.",
        )
    answer = {
        "timestamp__gte": iso(gte),
        "timestamp__lte": iso(lte),
        "application": application,
        "bucket": bucket,
    }
    with state_of(request).engine.connect() as conn:
        app_id = None
        if application is not None:
            app_id = queries.application_id(conn, application)
            if app_id is None:
                return JSONBody({**answer, **stats_json(Stats(), False)})
        if bucket is not None:
            _check_bucket_count(conn, bucket, gte, lte, app_id)
        counted = read_stats(
            conn, timestamp_gte=gte, timestamp_lte=lte, application_id=app_id, bucket=bucket
        )
    return JSONBody({**answer, **stats_json(counted, bucket is not None)})


def _check_bucket_count(
    conn: Connection,
    bucket: str,
    gte: datetime | None,
    lte: datetime | None,
    application_id: int | None,
) -> None:
    """A 400 when the range holds more than MAX_BUCKETS buckets; a missing bound counts
    from (or to) the first (or last) day anything is counted."""
    low, high = gte, lte
    if low is None or high is None:
        counted = extent(conn, application_id)
        if counted is None:
            return
        low, high = low or counted[0], high or counted[1]
    if (high - low) / timedelta(minutes=BUCKET_MINUTES[bucket]) > MAX_BUCKETS:
        unbounded = "" if gte and lte else " (from the first to the last day counted)"
        raise ApiError(
            400,
            "invalid_filter",
            f"That range{unbounded} holds more than {MAX_BUCKETS} {bucket}s; "
            "narrow it or use a wider bucket.",
        )
