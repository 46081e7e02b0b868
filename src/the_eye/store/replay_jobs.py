"""Bulk replay jobs: what one was asked to replay, and how far it got.

A job runs in a thread of the API process that started it and records its counts after each
batch; any process reads them, so a progress page works whichever API process answers it. A
job whose process stopped keeps its last counts and no `finished_at`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from the_eye.store.tables import AnyRow, replay_jobs
from the_eye.timestamps import utcnow


def create_job(conn: Connection, filters: dict[str, str], started_by: str) -> str:
    """A new job replaying the errors `filters` (as the person gave them) match; its id."""
    job_id = uuid.uuid4().hex
    now = utcnow()
    conn.execute(
        replay_jobs.insert().values(
            id=job_id, filters=filters, started_by=started_by, started_at=now, updated_at=now
        )
    )
    return job_id


def record_progress(conn: Connection, job_id: str, **values: Any) -> None:
    """Set some of a job's columns (`total`, the counts, `finished_at`, `failure`)."""
    conn.execute(
        sa.update(replay_jobs)
        .where(replay_jobs.c.id == job_id)
        .values(updated_at=utcnow(), **values)
    )


def get_job(conn: Connection, job_id: str) -> AnyRow | None:
    return conn.execute(sa.select(replay_jobs).where(replay_jobs.c.id == job_id)).first()


def running_job(conn: Connection, reported_since: datetime) -> str | None:
    """The id of a job still running: unfinished, and reporting since `reported_since`."""
    return conn.execute(
        sa.select(replay_jobs.c.id)
        .where(replay_jobs.c.finished_at.is_(None), replay_jobs.c.updated_at >= reported_since)
        .order_by(replay_jobs.c.started_at.desc())
        .limit(1)
    ).scalar()
