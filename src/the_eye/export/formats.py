"""Encoders of exported rows: NDJSON, CSV and Parquet, a batch at a time, in bounded memory.

An encoder turns batches of rows (tuples in the order of its `Column`s, as
`the_eye.store.exports` reads them: JSON as text, times as `YYYY-MM-DD HH:MM:SS.ffffff` UTC
text) into bytes: `header()`, then `encode(rows)` per batch, then `footer()`. Each call
returns only the bytes it produced, so a caller can stream them out or append them to a
file and drop them; nothing keeps earlier batches.

- NDJSON: one JSON object per line, as `GET /events/` (or `/errors/`) shows a row: JSON
  values as JSON, times as `2021-01-01T09:15:27.243860Z`.
- CSV: a header line, then one line per row; JSON values as their JSON text.
- Parquet: one row group per batch; integers as int64, times as UTC timestamps
  (microseconds), JSON values as JSON text. Needs pyarrow (`the-eye[export]`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import msgspec

from the_eye.extras import require

Kind = Literal["int", "text", "json", "time", "bool"]
# A row of values in its encoder's column order: a tuple, or a result row read by position.
Row = Sequence[Any]


@dataclass(slots=True, frozen=True)
class Column:
    name: str
    kind: Kind
    nullable: bool = False


EVENT_COLUMNS = (
    Column("id", "int"),
    Column("event_id", "text"),
    Column("session_id", "text"),
    Column("application", "text", nullable=True),
    Column("category", "text"),
    Column("name", "text"),
    Column("data", "json"),
    Column("timestamp", "time"),
    Column("received_at", "time"),
)
ERROR_COLUMNS = (
    Column("id", "int"),
    Column("reason", "text"),
    Column("message", "text"),
    Column("details", "json", nullable=True),
    Column("event_id", "text", nullable=True),
    Column("session_id", "text", nullable=True),
    Column("category", "text", nullable=True),
    Column("name", "text", nullable=True),
    Column("application", "text", nullable=True),
    Column("received_at", "time"),
    Column("replayed", "bool"),
    Column("replayed_event", "int", nullable=True),
)

Format = Literal["ndjson", "csv", "parquet"]
FORMATS: tuple[Format, ...] = ("ndjson", "csv", "parquet")
MEDIA_TYPES: dict[Format, str] = {
    "ndjson": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}
EXTENSIONS: dict[Format, str] = {"ndjson": "ndjson", "csv": "csv", "parquet": "parquet"}
PARQUET_MISSING = "Parquet needs pyarrow, which is not installed"


def require_parquet() -> None:
    """Raise `MissingExtra` (with the `pip install` that fixes it) when pyarrow is absent."""
    require("pyarrow", "export", PARQUET_MISSING)


def iso_time(text: str) -> str:
    """`2021-01-01 09:15:27.243860` (the store's UTC text) as The Eye prints every time."""
    return f"{text[:10]}T{text[11:]}Z"


class Encoder(Protocol):
    def header(self) -> bytes: ...

    def encode(self, rows: Sequence[Row]) -> bytes: ...

    def footer(self) -> bytes: ...


class NdjsonEncoder:
    def __init__(self, columns: Sequence[Column]) -> None:
        self._names = [column.name for column in columns]
        self._kinds = [column.kind for column in columns]
        self._encoder = msgspec.json.Encoder()

    def header(self) -> bytes:
        return b""

    def _value(self, kind: Kind, value: Any) -> Any:
        if value is None:
            return None
        if kind == "json":
            return msgspec.Raw(value)  # the stored JSON text, not decoded and encoded again
        if kind == "time":
            return iso_time(value)
        return value

    def encode(self, rows: Sequence[Row]) -> bytes:
        names, kinds, encode, value = self._names, self._kinds, self._encoder.encode, self._value
        lines = [
            encode({n: value(k, v) for n, k, v in zip(names, kinds, row, strict=True)})
            for row in rows
        ]
        lines.append(b"")
        return b"\n".join(lines)

    def footer(self) -> bytes:
        return b""


class CsvEncoder:
    def __init__(self, columns: Sequence[Column]) -> None:
        self._columns = list(columns)
        self._times = [i for i, column in enumerate(columns) if column.kind == "time"]
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\n")

    def _take(self) -> bytes:
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text.encode()

    def header(self) -> bytes:
        self._writer.writerow([column.name for column in self._columns])
        return self._take()

    def encode(self, rows: Sequence[Row]) -> bytes:
        times = self._times
        for row in rows:
            values = list(row)
            for i in times:
                values[i] = iso_time(values[i])
            self._writer.writerow(values)
        return self._take()

    def footer(self) -> bytes:
        return b""


class _Sink:
    """A write-only file that hands over what was written since it was last asked."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._chunks.append(chunk)
        return len(chunk)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


_REPEATING = frozenset({"session_id", "application", "category", "name", "reason"})


class ParquetEncoder:
    def __init__(self, columns: Sequence[Column]) -> None:
        require_parquet()
        import pyarrow as pa

        self._pa = pa
        self._columns = list(columns)
        types = {
            "int": pa.int64(),
            "text": pa.string(),
            "json": pa.string(),
            "time": pa.timestamp("us", tz="UTC"),
            "bool": pa.bool_(),
        }
        self.schema = pa.schema(
            [pa.field(c.name, types[c.kind], nullable=c.nullable) for c in columns]
        )
        self._sink = _Sink()
        self._writer: Any = None

    def header(self) -> bytes:
        import pyarrow.parquet as pq

        # Dictionaries only where values repeat: building them for ids and JSON costs time
        # and saves nothing.
        repeating = [c.name for c in self._columns if c.name in _REPEATING]
        self._writer = pq.ParquetWriter(
            self._sink, self.schema, compression="zstd", use_dictionary=repeating
        )
        return self._sink.take()

    def table(self, rows: Sequence[Row]) -> Any:
        """The rows as an Arrow table of this encoder's schema."""
        pa = self._pa
        # Column by column: indexing rows is several times faster than `zip(*rows)`.
        values = [[row[i] for row in rows] for i in range(len(self._columns))]
        arrays = []
        for column, field, column_values in zip(self._columns, self.schema, values, strict=True):
            if column.kind == "time":
                # Arrow parses the store's text in C, far faster than datetimes made in Python.
                naive = pa.array(column_values, type=pa.string()).cast(pa.timestamp("us"))
                arrays.append(naive.cast(field.type))
            else:
                arrays.append(pa.array(column_values, type=field.type))
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def encode(self, rows: Sequence[Row]) -> bytes:
        if rows:
            self._writer.write_table(self.table(rows), row_group_size=len(rows))
        return self._sink.take()

    def footer(self) -> bytes:
        self._writer.close()
        return self._sink.take()


def encoder(format: Format, columns: Sequence[Column]) -> Encoder:
    """A fresh encoder of `format` for rows of `columns`."""
    if format == "parquet":
        return ParquetEncoder(columns)
    if format == "csv":
        return CsvEncoder(columns)
    return NdjsonEncoder(columns)
