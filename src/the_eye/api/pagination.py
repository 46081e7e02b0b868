"""Lists: filters parsed into clear 400s, opaque keyset cursors, `{"results", "next"}` bodies."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
import sqlalchemy as sa
from fastapi import Path, Query, Request
from sqlalchemy.engine import Engine

from the_eye.api.openapi import answers
from the_eye.api.problems import ApiError
from the_eye.api.responses import JSONBody, encode_json
from the_eye.api.state import state_of
from the_eye.store import queries
from the_eye.store.queries import Keyset
from the_eye.store.tables import AnyRow
from the_eye.timestamps import format_timestamp, parse_timestamp

MAX_LIMIT = 1000
MAX_ID = 2**63 - 1

# A row id in a path: larger ones are no id at all (and would overflow the driver).
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]

Limit = Query(100, ge=1, le=MAX_LIMIT, description=f"Page size, at most {MAX_LIMIT}.")
CursorParam = Query(None, description="Opaque position taken from a previous page's `next`.")
# The error answers of every list.
LIST_ANSWERS = answers(
    {
        400: "`invalid_filter`: a time filter that is not ISO 8601; "
        "`invalid_cursor`: a cursor not taken from this list's `next`."
    }
)


def time_param() -> Any:
    """A time filter's query parameter (one per parameter: FastAPI names each after its own),
    read by `time_filter`: documented as `date-time`, which it takes, and more."""
    return Query(
        None,
        description="ISO 8601, inclusive; `T` or a space; no offset means UTC.",
        json_schema_extra={"format": "date-time"},
    )


def time_filter(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    parsed = parse_timestamp(value)
    if parsed is None:
        raise ApiError(
            400, "invalid_filter", f"`{name}` must be an ISO 8601 date and time, got {value!r}."
        )
    return parsed


def encode_cursor(keyset: Keyset, position: tuple[datetime, int]) -> str:
    key, row_id = position
    raw = encode_json(["d" if keyset.descending else "a", key.isoformat(), row_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, keyset: Keyset) -> tuple[datetime, Any] | None:
    """The position a cursor names, or a 400 when it was not made for this list and order."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        direction, key, row_id = msgspec.json.decode(raw)
        if direction != ("d" if keyset.descending else "a"):
            raise ValueError("cursor made for another ordering")
        if type(row_id) is not keyset.id.type.python_type:
            raise ValueError("cursor made for another list")
        if isinstance(row_id, int) and not 0 <= row_id <= MAX_ID:
            raise ValueError("cursor id out of range")
        return datetime.fromisoformat(key), row_id
    except (binascii.Error, ValueError, TypeError):  # msgspec.DecodeError is a ValueError
        raise ApiError(
            400, "invalid_cursor", "The cursor is not valid for this list; take it from `next`."
        ) from None


def next_link(request: Request, cursor: str) -> str:
    """The URL of the page at `cursor`: under `THE_EYE_PUBLIC_URL` when set, else relative
    to the host; never built from the request's `Host` header, which the client chose."""
    query = urlencode(
        [
            *((k, v) for k, v in request.query_params.multi_items() if k != "cursor"),
            ("cursor", cursor),
        ]
    )
    public_url = state_of(request).settings.public_url
    base = public_url.rstrip("/") if public_url else ""
    return f"{base}{request.url.path}?{query}"


def clamp(limit: int) -> int:
    return min(limit, MAX_LIMIT)


def iso(value: datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


@dataclass(frozen=True, slots=True)
class RowsPage:
    """One page of a list: its rows, the application names they refer to, the position the
    page started after (None on the first page), and the cursor of the next page (None on
    the last)."""

    rows: Sequence[AnyRow]
    names: dict[int, str]
    after: tuple[datetime, Any] | None
    next_cursor: str | None


def read_page(
    engine: Engine,
    keyset: Keyset,
    cursor: str | None,
    limit: int,
    application: str | None,
    select: Callable[[int | None], sa.Select[Any]],
) -> RowsPage:
    """`select(application_id)` paged in `keyset` order from `cursor` (a `400
    invalid_cursor` when it was not made for this list). An unknown application name
    matches nothing."""
    after = decode_cursor(cursor, keyset)
    with engine.connect() as conn:
        app_id = None
        if application is not None:
            app_id = queries.application_id(conn, application)
            if app_id is None:
                return RowsPage([], {}, after, None)
        rows, position = queries.page(conn, select(app_id), keyset, after, clamp(limit))
        names = queries.application_names(conn) if rows else {}
    next_cursor = None if position is None else encode_cursor(keyset, position)
    return RowsPage(rows, names, after, next_cursor)


def list_page(
    request: Request,
    keyset: Keyset,
    cursor: str | None,
    limit: int,
    application: str | None,
    select: Callable[[int | None], sa.Select[Any]],
    to_json: Callable[[Any, dict[int, str]], dict[str, Any]],
) -> JSONBody:
    """The answer of a list endpoint: `read_page`'s rows, each made JSON by
    `to_json(row, application names)`."""
    found = read_page(state_of(request).engine, keyset, cursor, limit, application, select)
    next_url = None if found.next_cursor is None else next_link(request, found.next_cursor)
    return JSONBody({"results": [to_json(r, found.names) for r in found.rows], "next": next_url})
