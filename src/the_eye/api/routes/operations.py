"""Health, readiness and Prometheus metrics (no credential)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from the_eye.api.problems import OUTAGE_RETRY_AFTER, unavailable
from the_eye.api.responses import JSONBody
from the_eye.api.state import AppState, state_of
from the_eye.store import queries
from the_eye.timestamps import utcnow

router = APIRouter(tags=["operations"])

METRICS = (
    ("received", "Events accepted by the ingest API."),
    ("stored", "Events stored."),
    ("errored", "Events and bodies kept as error records."),
    ("duplicates", "Events dropped as repeats of a known event_id."),
)


@router.get("/health/", summary="The process is up")
async def health() -> JSONBody:
    return JSONBody({"status": "ok"})


@router.get("/ready/", summary="The store and the queue are reachable")
def ready(request: Request) -> Response:
    state = state_of(request)
    checks: dict[str, str] = {}
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
    if all(v == "ok" for v in checks.values()):
        return JSONBody({"status": "ready", **checks})
    return unavailable(
        "The Eye cannot reach its store or queue", OUTAGE_RETRY_AFTER, checks
    ).response()


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
    oldest = state.queue.oldest_received_at()
    lag = (utcnow() - oldest).total_seconds() if oldest else 0.0
    lines += [
        "# HELP the_eye_queue_depth Accepted requests waiting to be processed.",
        "# TYPE the_eye_queue_depth gauge",
        f"the_eye_queue_depth {state.queue.depth()}",
        "# HELP the_eye_processing_lag_seconds Age of the oldest request waiting.",
        "# TYPE the_eye_processing_lag_seconds gauge",
        f"the_eye_processing_lag_seconds {max(lag, 0.0):.3f}",
    ]
    return "\n".join(lines) + "\n"
