"""Retention: delete events, errors and empty sessions older than THE_EYE_RETENTION_DAYS.

`the-eye purge` runs it once; `serve` and `worker` run it every hour while the setting is
on. Work goes in batches, each its own short transaction, so processors and queries are
never held up for long, and any number of purges may run at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from the_eye.config import Settings
from the_eye.store import retention, stats
from the_eye.store.engine import create_engine, write_transaction
from the_eye.timestamps import utcnow

log = logging.getLogger(__name__)

DEFAULT_BATCH = 1000
INTERVAL_SECONDS = 3600


@dataclass(slots=True)
class PurgeCounts:
    """What a purge deleted, so far or in the end."""

    events: int = 0
    errors: int = 0
    sessions: int = 0


def cutoff_for(days: int, now: datetime | None = None) -> datetime:
    """The moment `days` days before `now` (by default, the present)."""
    return (now or utcnow()) - timedelta(days=days)


def purge(
    engine: Engine,
    cutoff: datetime,
    *,
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[PurgeCounts], None] | None = None,
) -> PurgeCounts:
    """Delete events that happened, and errors received, before `cutoff`, and the sessions
    left without events that are older than it."""
    counts = PurgeCounts()

    def report() -> None:
        if progress is not None:
            progress(counts)

    while True:
        with write_transaction(engine) as conn:
            n_events, n_sessions = retention.purge_events(conn, cutoff, batch_size)
        if not n_events:
            break
        counts.events += n_events
        counts.sessions += n_sessions
        report()
    while True:
        with write_transaction(engine) as conn:
            n_errors = retention.purge_errors(conn, cutoff, batch_size)
        if not n_errors:
            break
        counts.errors += n_errors
        report()
    after: str | None = ""
    while after is not None:
        with write_transaction(engine) as conn:
            n_sessions, after = retention.purge_empty_sessions(conn, cutoff, after, batch_size)
        counts.sessions += n_sessions
        report()
    with write_transaction(engine) as conn:
        stats.drop_empty_slots(conn, cutoff)
    return counts


def run_retention(settings: Settings, stop: threading.Event) -> None:
    """Purge every hour until `stop` is set, while THE_EYE_RETENTION_DAYS is on."""
    if settings.retention_days is None:
        return
    engine = create_engine(settings)
    try:
        while not stop.is_set():
            try:
                counts = purge(engine, cutoff_for(settings.retention_days))
                if counts.events or counts.errors or counts.sessions:
                    log.info(
                        "retention: deleted %d events, %d errors, %d sessions",
                        counts.events,
                        counts.errors,
                        counts.sessions,
                    )
            except Exception:
                log.exception("retention purge failed; trying again in an hour")
            stop.wait(INTERVAL_SECONDS)
    finally:
        engine.dispose()


def start_retention(settings: Settings) -> threading.Event | None:
    """Run `run_retention` on a daemon thread when retention is on; set the event to stop."""
    if settings.retention_days is None:
        return None
    stop = threading.Event()
    threading.Thread(
        target=run_retention, args=(settings, stop), name="retention", daemon=True
    ).start()
    return stop
