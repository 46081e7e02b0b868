"""Health, readiness and Prometheus metrics (no credential)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from the_eye.api import bodies
from the_eye.api.openapi import answers
from the_eye.api.problems import OUTAGE_RETRY_AFTER, ApiError, unavailable
from the_eye.api.responses import JSONBody
from the_eye.api.state import AppState, state_of
from the_eye.store import queries
from the_eye.store.liveness import SILENT_BEATS, Liveness, liveness
from the_eye.timestamps import utcnow

router = APIRouter(tags=["operations"])

METRICS = (
    ("received", "Events accepted by the ingest API."),
    ("stored", "Events stored."),
    ("errored", "Events kept as error records (their own, or their request's)."),
    ("duplicates", "Events and invalid events dropped as repeats of a known event_id."),
)


@router.get("/health/", summary="The process is up", response_model=bodies.Health)
async def health() -> JSONBody:
    return JSONBody({"status": "ok"})


@router.get(
    "/ready/",
    summary="The store and the queue are reachable, and work is processed",
    response_model=bodies.Ready,
    responses=answers(
        {
            503: "`unavailable`: the store or the queue cannot be reached (`details` says "
            "which); `processor_down`: requests wait and no processor has beaten lately."
        }
    ),
)
def ready(request: Request) -> Response:
    """503 when the store or the queue cannot be reached, or when requests wait in the queue
    and no processor has beaten within three heartbeat intervals (down, or stuck on a batch).
    An empty queue is ready without processors: nothing waits on them."""
    state = state_of(request)
    checks: dict[str, object] = {}
    probes: tuple[tuple[str, Callable[[], None]], ...] = (
        ("store", lambda: _ping_store(state)),
        ("queue", state.queue.ping),
    )
    for part, probe in probes:
        try:
            probe()
            checks[part] = "ok"
        except Exception as exc:
            checks[part] = f"unavailable: {type(exc).__name__}"
    if not all(v == "ok" for v in checks.values()):
        return unavailable(
            "The Eye cannot reach its store or queue", OUTAGE_RETRY_AFTER, checks
        ).response()
    alive = _liveness(state).alive
    checks["processors"] = alive
    if alive == 0 and state.queue.depth() > 0:
        silent = SILENT_BEATS * state.settings.heartbeat_seconds
        return ApiError(
            503,
            "processor_down",
            f"Requests wait in the queue and no processor has been alive in the last {silent:g} s.",
            checks,
            {"Retry-After": str(OUTAGE_RETRY_AFTER)},
        ).response()
    return JSONBody({"status": "ready", **checks})


def _liveness(state: AppState) -> Liveness:
    with state.engine.connect() as conn:
        return liveness(conn, utcnow(), state.settings.heartbeat_seconds)


def _ping_store(state: AppState) -> None:
    with state.engine.connect() as conn:
        queries.application_names(conn)


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> PlainTextResponse:
    return PlainTextResponse(await run_in_threadpool(render_metrics, state_of(request)))


def render_metrics(state: AppState) -> str:
    """The Prometheus text of the counters, the queue's depth and the processing lag."""
    with state.engine.connect() as conn:
        values = queries.counter_values(conn)
    values["received"] = state.queue.received_total()
    lines = []
    for name, text in METRICS:
        metric = f"the_eye_events_{name}_total"
        lines += [f"# HELP {metric} {text}", f"# TYPE {metric} counter"]
        lines.append(f"{metric} {values.get(name, 0)}")
    lines += [
        "# HELP the_eye_requests_rejected_total Bodies refused at ingest, kept as error records.",
        "# TYPE the_eye_requests_rejected_total counter",
        f"the_eye_requests_rejected_total {values.get('rejected', 0)}",
    ]
    live = _liveness(state)
    lines += [
        "# HELP the_eye_processors_alive Processors that beat within three heartbeat intervals.",
        "# TYPE the_eye_processors_alive gauge",
        f"the_eye_processors_alive {live.alive}",
    ]
    if live.last_beat_age is not None:
        lines += [
            "# HELP the_eye_processor_last_heartbeat_seconds Age of the freshest processor "
            "heartbeat.",
            "# TYPE the_eye_processor_last_heartbeat_seconds gauge",
            f"the_eye_processor_last_heartbeat_seconds {live.last_beat_age:.3f}",
        ]
    waiting = backlog(state)
    lines += [
        "# HELP the_eye_queue_depth Accepted requests waiting to be processed.",
        "# TYPE the_eye_queue_depth gauge",
        f"the_eye_queue_depth {waiting.depth}",
        "# HELP the_eye_processing_lag_seconds Age of the oldest request waiting.",
        "# TYPE the_eye_processing_lag_seconds gauge",
        f"the_eye_processing_lag_seconds {waiting.lag_seconds:.3f}",
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class Backlog:
    """Accepted requests waiting to be processed, and the age of the oldest (0 when none)."""

    depth: int
    lag_seconds: float


def backlog(state: AppState) -> Backlog:
    oldest = state.queue.oldest_received_at()
    lag = (utcnow() - oldest).total_seconds() if oldest else 0.0
    return Backlog(state.queue.depth(), max(lag, 0.0))
