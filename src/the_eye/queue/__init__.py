"""The queue between ingest and processing, and the choice of backend from the settings."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from the_eye.config import Settings
from the_eye.extras import require
from the_eye.queue.base import (
    EVENTS,
    INVALID_BODY,
    REJECTED,
    Delivery,
    Message,
    Queue,
    QueueUnavailable,
    read_rejected,
    rejected_message,
)

__all__ = [
    "EVENTS",
    "INVALID_BODY",
    "REJECTED",
    "Delivery",
    "Message",
    "Queue",
    "QueueUnavailable",
    "open_queue",
    "read_rejected",
    "rejected_message",
]


def open_queue(settings: Settings, engine: Engine) -> Queue:
    """The queue `settings.queue_url` names."""
    if settings.queue_url == "db":
        from the_eye.queue.db import open_database_queue

        return open_database_queue(settings, engine)
    if settings.queue_url.startswith(("redis://", "rediss://", "unix://")):
        require("redis", "redis", "A Redis queue needs the redis client")
        from the_eye.queue.redis import RedisQueue

        return RedisQueue(settings, engine)
    raise ValueError(
        f"Unsupported THE_EYE_QUEUE_URL {settings.queue_url!r}: use `db` or `redis://host:port/n`."
    )
