"""Streaming exports: every row a list's filters match, in one answer of any size, in bounded
memory.

The rows are read in keyset pages of `PAGE`, each on a connection of its own (no
transaction stays open for the whole download), encoded (`the_eye.export.formats`) and
handed to the client before the next page is read: the server holds one page at a time,
whatever the number of rows. Rows go oldest first by the list's time and then id, so rows
stored while the download runs are included if they come after the current position.
A store failure in the middle ends the answer early, which the client sees as a body cut
short (the chunked encoding is never closed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from fastapi import Query, Request
from sqlalchemy.engine import Connection
from starlette.responses import StreamingResponse

from the_eye.api.openapi import answers
from the_eye.api.problems import ApiError
from the_eye.api.state import state_of
from the_eye.export.formats import (
    EXTENSIONS,
    MEDIA_TYPES,
    PARQUET_MISSING,
    Column,
    Format,
    encoder,
    require_parquet,
)
from the_eye.extras import MissingExtra, install_hint
from the_eye.store import queries
from the_eye.store.exports import parse_time_text

# Rows read, encoded and sent at a time: what the server holds of an export.
PAGE = 1000

FormatParam = Query(
    "ndjson",
    description="`ndjson` (one JSON object per line, as the list shows it), `csv` (a "
    "header line; JSON values as JSON text) or `parquet` (typed columns, UTC timestamps; "
    "needs the server's `export` extra).",
)


def export_answers(what: str) -> dict[int | str, dict[str, Any]]:
    """The documented answers of an export of `what`: the three media types, and its `400`s."""
    return {
        200: {
            "description": f"Every {what} the filters match, oldest first, streamed.",
            "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.apache.parquet": {
                    "schema": {"type": "string", "format": "binary"}
                },
            },
        },
        **answers(
            {
                400: "`invalid_filter`: a time filter that is not ISO 8601; "
                "`unsupported_format`: `parquet` on a server without its `export` extra."
            }
        ),
    }


# Builds the statement of the rows to export, given a connection (for its dialect) and the
# application's id; the statement's columns are those of the encoder.
SelectRows = Callable[[Connection, int | None], sa.Select[Any]]


def export_response(
    request: Request,
    format: Format,
    columns: Sequence[Column],
    keyset: queries.Keyset,
    application: str | None,
    select: SelectRows,
    filename: str,
) -> StreamingResponse:
    """The streaming answer of an export (see the module's doc); `keyset` must be ascending
    and name the columns that `columns` call `time` and `id`."""
    if format == "parquet":
        try:
            require_parquet()
        except MissingExtra:
            raise ApiError(
                400,
                "unsupported_format",
                f"{PARQUET_MISSING} on this server ({install_hint('export')}); "
                "ask for `ndjson` or `csv`.",
            ) from None
    engine = state_of(request).engine
    app_id = None
    if application is not None:
        with engine.connect() as conn:
            app_id = queries.application_id(conn, application)
    names = [column.name for column in columns]
    time_at = names.index(next(c.name for c in columns if c.kind == "time"))

    def body() -> Iterator[bytes]:
        out = encoder(format, columns)
        yield out.header()
        after: tuple[Any, Any] | None = None
        # An unknown application matches nothing: the answer is the format's empty file.
        while application is None or app_id is not None:
            with engine.connect() as conn:
                stmt = select(conn, app_id)
                if after is not None:
                    stmt = stmt.where(keyset.after(*after))
                rows = conn.execute(stmt.order_by(*keyset.order_by()).limit(PAGE)).all()
            if rows:
                yield out.encode(rows)
            if len(rows) < PAGE:
                break
            after = (parse_time_text(rows[-1][time_at]), rows[-1][0])
        yield out.footer()

    return StreamingResponse(
        body(),
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}.{EXTENSIONS[format]}"'},
    )
