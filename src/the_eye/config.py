"""Settings: the one place The Eye reads its environment (and an optional `.env`)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024


class Settings(BaseSettings):
    """Every knob of The Eye, read from `THE_EYE_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="THE_EYE_", env_file=".env", extra="ignore")

    database_url: str = Field(
        "sqlite:///the-eye.db", description="SQLAlchemy URL of the store (SQLite or PostgreSQL)."
    )
    queue_url: str = Field(
        "db",
        description="`db` (an inbox table: in the store, or beside a SQLite store in a file of "
        "its own) or `redis://host:port/n`.",
    )
    redis_stream: str = Field("the-eye:inbox", description="Redis stream of accepted requests.")
    redis_group: str = Field(
        "the-eye:processors", description="Consumer group that every processor joins."
    )
    redis_consumer: str | None = Field(
        None, description="This processor's name in the group; `hostname-pid` when unset."
    )
    redis_claim_idle: float = Field(
        60.0,
        description="Seconds an entry may stay unacknowledged before another processor takes "
        "it over (XAUTOCLAIM); longer than any batch takes.",
    )
    redis_max_length: int = Field(
        100_000,
        description="Most requests the stream may hold (waiting + in flight); past it ingest "
        "answers 503 rather than growing Redis' memory.",
    )
    redis_timeout: float = Field(
        5.0, description="Seconds a Redis call may take before the queue counts as unavailable."
    )
    admin_token: str | None = Field(None, description="Accepted as an admin API token when set.")
    cors_origins: str = Field("", description="Comma-separated origins allowed by CORS.")

    max_body_bytes: int = Field(5 * MIB, description="Largest request body, after gzip decoding.")
    max_event_bytes: int = Field(64 * 1024, description="Largest single event.")
    max_clock_skew: float = Field(60.0, description="Seconds an event may lie in the future.")
    max_error_payload_bytes: int = Field(
        64 * 1024, description="How much of an unparseable body an error record keeps."
    )
    segment_max_message_bytes: int = Field(
        32 * 1024, description="Largest Segment message (`/v1/*`), as Segment allows."
    )
    segment_max_batch_bytes: int = Field(
        500 * 1024, description="Largest Segment body (`/v1/batch`), after gzip decoding."
    )
    max_events_per_request: int = Field(
        5000, ge=1, description="Most events (or Segment messages) one request may carry."
    )
    body_key_max_bytes: int = Field(
        64 * 1024,
        description="Largest body, after gzip decoding, that may carry its write key inside; "
        "larger bodies must send the key in `Authorization`.",
    )
    header_timeout: float = Field(
        10.0, gt=0, description="Seconds a connection may take to send a request's headers."
    )
    body_timeout: float = Field(
        30.0,
        gt=0,
        description="Seconds a request may take to send its body, once its headers are in.",
    )
    max_header_bytes: int = Field(
        16 * 1024, description="Largest request line and headers together; larger answer 431."
    )
    max_body_bytes_in_flight: int = Field(
        64 * MIB,
        ge=1,
        description="Most request-body bytes one API process holds at once (declared "
        "`Content-Length`s, or chunks as they arrive); past it, ingest answers 503.",
    )
    max_connections: int = Field(
        1000,
        ge=1,
        description="Most connections and requests `serve` handles at once per API process; "
        "past it, new requests answer 503.",
    )
    rate_limit_per_key: float = Field(
        0.0,
        ge=0,
        description="Requests per second one write key may send to one API process; 0: no limit.",
    )
    rate_limit_burst: float = Field(
        0.0,
        ge=0,
        description="Requests a write key may send at once above its rate; 0: one second's worth.",
    )
    auth_failures_per_address: int = Field(
        60,
        ge=0,
        description="Failed authentications per minute one client address may make before "
        "answers turn to 429; 0: no limit.",
    )
    forwarded_allow_ips: str = Field(
        "127.0.0.1,::1",
        description="Proxies trusted to set `X-Forwarded-For` (comma-separated, `*` for any).",
    )
    public_url: str | None = Field(
        None,
        description="The Eye's public base URL (`https://eye.example.com`), used in `next` "
        "links; unset, `next` links are relative.",
    )

    batch_size: int = Field(2000, description="Most queued requests a processor takes at once.")
    batch_events: int = Field(
        10000, description="About how many events a processor takes into one transaction."
    )
    poll_interval: float = Field(0.02, description="Seconds an idle processor waits between polls.")
    max_deliveries: int = Field(
        3,
        ge=1,
        description="Deliveries of a request to processors that died with it in hand, after "
        "which it is kept as a `processing_failed` error instead of being tried again.",
    )
    inbox_claim_idle: float = Field(
        30.0,
        gt=0,
        description="Seconds inbox rows taken by a processor stay reserved to it; a dead "
        "processor's batch is taken over after this (the `db` queue's XAUTOCLAIM).",
    )
    heartbeat_seconds: float = Field(
        5.0,
        gt=0,
        description="How often a processor records that it is alive; `/ready/` and `/metrics` "
        "count a processor silent for three times this as down.",
    )
    serve_processor_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="Niceness the processors `serve` starts beside its API add to its own: they "
        "leave the CPU to ingest under load and catch up when it idles (0: the API's priority).",
    )
    console_session_hours: float = Field(
        12.0,
        gt=0,
        description="How long a console sign-in lasts before the console asks for the token again.",
    )
    key_cache_seconds: float = Field(
        2.0, description="How long a write-key lookup is cached, found or not."
    )
    sqlite_busy_timeout_ms: int = Field(
        5000, description="How long a SQLite writer waits for the lock before giving up (503)."
    )
    sqlite_processor_cache_mb: int = Field(
        64,
        ge=0,
        description="SQLite page cache of each processor's store connections, in MB (0: "
        "SQLite's 2 MB): the indexes every insert walks stay in memory.",
    )
    sqlite_synchronous: str = Field(
        "NORMAL",
        description="SQLite `synchronous`: NORMAL survives process crashes, FULL power loss.",
    )

    schemas_dir: Path | None = Field(
        None,
        description="Directory of JSON Schema files, `<category>/<name>.json`, loaded by `serve`.",
    )
    schema_refresh_seconds: float = Field(
        2.0, description="How often a processor looks for new schema versions and strict flags."
    )
    schema_check_budget_ms: float = Field(
        100.0,
        gt=0,
        description="Longest time checking one event's data against its schema may take; an "
        "event that needs longer becomes a `check_budget_exceeded` error.",
    )
    retention_days: int | None = Field(
        None,
        ge=1,
        description="Keep events and errors this many days; unset keeps them for ever.",
    )

    host: str = "127.0.0.1"
    port: int = 8000

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
