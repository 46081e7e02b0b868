"""`/stats/`: how many events of each type and errors of each reason, per time bucket."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any, Literal

from fastapi import APIRouter, Query, Request

from the_eye.api.auth import ReadAccess
from the_eye.api.pagination import iso, time_filter
from the_eye.api.problems import ApiError
from the_eye.api.responses import JSONBody
from the_eye.api.state import state_of
from the_eye.store import queries
from the_eye.store.stats import BUCKET_MINUTES, Stats, read_stats, start_of

router = APIRouter(tags=["stats"], dependencies=[ReadAccess])

MAX_BUCKETS = 10_000


def _events(counts: Counter[tuple[str, str]]) -> list[dict[str, Any]]:
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [{"category": c, "name": n, "count": k} for (c, n), k in ordered if k]


def _errors(counts: Counter[str]) -> list[dict[str, Any]]:
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [{"reason": r, "count": k} for r, k in ordered if k]


def stats_json(stats: Stats, bucketed: bool) -> dict[str, Any]:
    totals_events: Counter[tuple[str, str]] = Counter()
    totals_errors: Counter[str] = Counter()
    for counts in stats.events.values():
        totals_events.update(counts)
    for error_counts in stats.errors.values():
        totals_errors.update(error_counts)
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


@router.get("/stats/", summary="Counts of events by type and of errors by reason")
def stats(
    request: Request,
    timestamp__gte: str | None = Query(None, description="ISO 8601, inclusive."),
    timestamp__lte: str | None = Query(None, description="ISO 8601, inclusive."),
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
    if bucket is not None:
        width = timedelta(minutes=BUCKET_MINUTES[bucket])
        if gte is None or lte is None:
            if bucket == "minute":
                raise ApiError(
                    400,
                    "invalid_filter",
                    "`bucket=minute` needs both `timestamp__gte` and `timestamp__lte`.",
                )
        elif (lte - gte) / width > MAX_BUCKETS:
            raise ApiError(
                400,
                "invalid_filter",
                f"That range holds more than {MAX_BUCKETS} {bucket}s; "
                "narrow it or use a wider bucket.",
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
        counted = read_stats(
            conn, timestamp_gte=gte, timestamp_lte=lte, application_id=app_id, bucket=bucket
        )
    return JSONBody({**answer, **stats_json(counted, bucket is not None)})
