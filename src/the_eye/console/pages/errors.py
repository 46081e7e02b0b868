"""The console's errors: the list with its filters and counts by reason, one error with its raw
event and the failing path marked, replaying one, and replaying the filtered set with its
progress shown.

The list filters as `GET /errors/` does (the same `ErrorFilters`, the same indexed query,
keyset-paged); the counts by reason come from the rollups `/stats/` reads. Replays call the
same functions as `POST /errors/{id}/replay/` and `POST /errors/replay/`; a bulk replay runs
in a thread of this process, and its page (any process can serve it) polls its progress.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, get_args
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import ImmutableMultiDict

from the_eye.api.bodies import ErrorReason
from the_eye.api.pagination import RowId, decode_cursor, encode_cursor, next_link
from the_eye.api.problems import ApiError, not_found
from the_eye.api.routes.errors import ErrorFilters
from the_eye.api.state import state_of
from the_eye.console.auth import ConsoleUser, Editor, Viewer
from the_eye.console.marking import failing_path, marked_json
from the_eye.console.templating import is_htmx, render, session_url
from the_eye.services import replay
from the_eye.store import queries
from the_eye.store.replay_jobs import get_job, running_job
from the_eye.store.stats import read_stats
from the_eye.store.tables import AnyRow
from the_eye.timestamps import utcnow

# A job reports after every batch; one silent this long stopped with the process running it.
STALLED_AFTER = timedelta(minutes=2)

router = APIRouter(prefix="/console/errors", include_in_schema=False)

PAGE_SIZE = 50
REASONS = get_args(ErrorReason)
# The filters of the list, as the form and its URL name them (those of `GET /errors/`).
FILTERS = (
    "reason",
    "application",
    "session",
    "category",
    "name",
    "received_at__gte",
    "received_at__lte",
    "replayed",
)
OUTCOMES = {
    "replayed": "Replayed: the error passed the checks and is now an event.",
    "still_failing": "Still failing: the error is kept, with the reason found now.",
    "already_replayed": "This error was replayed before; nothing more was stored.",
    "not_replayable": "This error keeps a whole request body, not one event; it cannot become "
    "an event.",
}


class FilterProblem(ValueError):
    """A filter the person typed that does not parse; the page says which."""


def read_filters(given: ImmutableMultiDict[str, Any]) -> tuple[dict[str, str], ErrorFilters]:
    """The filters a form or a URL gives (blank ones left out), and them as `ErrorFilters`."""
    values = {
        key: value.strip()
        for key in FILTERS
        if isinstance(value := given.get(key), str) and value.strip()
    }
    if values.get("reason", REASONS[0]) not in REASONS:
        raise FilterProblem(f"There is no error reason {values['reason']!r}.")
    if values.get("replayed", "true") not in ("true", "false"):
        raise FilterProblem("`replayed` is either `true` or `false`.")
    try:
        filters = ErrorFilters(
            reason=values.get("reason"),  # type: ignore[arg-type]  # checked above
            application=values.get("application"),
            received_at__gte=values.get("received_at__gte"),
            received_at__lte=values.get("received_at__lte"),
            replayed=None if "replayed" not in values else values["replayed"] == "true",
            session=values.get("session"),
            category=values.get("category"),
            name=values.get("name"),
        )
    except ApiError as exc:
        raise FilterProblem(exc.message) from None
    return values, filters


@router.get("/")
def error_list(request: Request, user: ConsoleUser = Viewer) -> HTMLResponse:
    state = state_of(request)
    context: dict[str, Any] = {"nav": "errors", "rows": [], "next_url": None, "by_reason": []}
    problem: str | None = None
    try:
        values, filters = read_filters(request.query_params)
        after = decode_cursor(request.query_params.get("cursor"), queries.ERRORS_NEWEST_FIRST)
    except (FilterProblem, ApiError) as exc:
        values, problem = dict(request.query_params), str(exc)
    with state.engine.connect() as conn:
        names = queries.application_names(conn)
        context["applications"] = sorted(names.values())
        if problem is None:
            where = filters.resolve(conn)
            if where is not None:
                rows, position = queries.page(
                    conn,
                    queries.select_errors(where),
                    queries.ERRORS_NEWEST_FIRST,
                    after,
                    PAGE_SIZE,
                )
                context["rows"] = [_listed(row, names) for row in rows]
                if position is not None:
                    cursor = encode_cursor(queries.ERRORS_NEWEST_FIRST, position)
                    context["next_url"] = next_link(request, cursor)
                context["by_reason"] = _open_by_reason(conn, where)
    return render(
        request,
        user,
        "errors.html",
        {
            **context,
            "filters": values,
            "form": {key: values.get(key, "") for key in FILTERS},
            "problem": problem,
            "reasons": REASONS,
            "filtered": any(key in values for key in FILTERS),
        },
        status_code=400 if problem else 200,
    )


def _listed(row: AnyRow, names: dict[int, str]) -> dict[str, Any]:
    return {
        "row": row,
        "application": names.get(row.application_id),
        "session_url": None if row.session_id is None else session_url(row.session_id),
    }


def _open_by_reason(conn: Any, where: queries.ErrorFilter) -> list[tuple[str, int]]:
    """Open errors by reason in the filter's time range and application, from the rollups."""
    stats = read_stats(
        conn,
        timestamp_gte=where.received_at_gte,
        timestamp_lte=where.received_at_lte,
        application_id=where.application_id,
        bucket=None,
    )
    return stats.totals()[1].most_common()


@router.get("/{error_id:int}/")
def error_detail(
    request: Request, error_id: RowId, outcome: str | None = None, user: ConsoleUser = Viewer
) -> HTMLResponse:
    state = state_of(request)
    with state.engine.connect() as conn:
        row = queries.get_error(conn, error_id)
        if row is None:
            raise not_found("error")
        application = queries.application_names(conn).get(row.application_id)
    path = failing_path(row.details)
    try:
        pieces = marked_json(json.loads(row.payload), path)
    except (ValueError, RecursionError):
        # Cut short, not JSON, or nested deeper than Python's reader goes: shown as kept.
        pieces = None
    return render(
        request,
        user,
        "error.html",
        {
            "nav": "errors",
            "error": row,
            "application": application,
            "session_url": None if row.session_id is None else session_url(row.session_id),
            "failing_path": path,
            "pieces": pieces,
            "outcome": OUTCOMES.get(outcome or ""),
            "outcome_kind": outcome,
            "replayable": row.event_id is not None and row.application_id is not None,
        },
    )


@router.post("/{error_id:int}/replay/")
def replay_one(request: Request, error_id: RowId, user: ConsoleUser = Editor) -> Response:
    state = state_of(request)
    try:
        done = replay.replay_error(state.engine, error_id, state.checker)
    except replay.ErrorNotFound:
        raise not_found("error") from None
    query = urlencode({"outcome": done.outcome})
    return RedirectResponse(f"/console/errors/{error_id}/?{query}", status_code=303)


@router.post("/replay/")
async def replay_filtered(request: Request, user: ConsoleUser = Editor) -> Response:
    try:
        values, filters = read_filters(await request.form())
    except FilterProblem as exc:
        raise ApiError(400, "invalid_filter", str(exc)) from None
    # One bulk replay at a time: a second click, or a re-sent form, shows the running one.
    job_id = await run_in_threadpool(_start_job, request, user, values, filters)
    return RedirectResponse(f"/console/errors/replay/{job_id}/", status_code=303)


def _start_job(
    request: Request, user: ConsoleUser, values: dict[str, str], filters: ErrorFilters
) -> str:
    state = state_of(request)
    with state.engine.connect() as conn:
        running = running_job(conn, utcnow() - STALLED_AFTER)
        where = filters.resolve(conn)
    if running is not None:
        return running
    if where is None:
        raise ApiError(400, "invalid_filter", f"No application is named {filters.application!r}.")
    return replay.start_replay_job(state.engine, where, state.checker, values, user.name)


@router.get("/replay/{job_id}/")
def replay_progress(request: Request, job_id: str, user: ConsoleUser = Editor) -> HTMLResponse:
    with state_of(request).engine.connect() as conn:
        job = get_job(conn, job_id)
    if job is None:
        raise not_found("replay job")
    done = job.replayed + job.still_failing + job.skipped
    context = {
        "nav": "errors",
        "job": job,
        "done": done,
        "stalled": job.finished_at is None and utcnow() - job.updated_at > STALLED_AFTER,
        "back": "/console/errors/?" + urlencode(job.filters),
    }
    template = "replay_progress.html" if is_htmx(request) else "replay_job.html"
    return render(request, user, template, context)
