"""`the-eye export DIR`: the events stored since the last run, as files partitioned by day,
each event exactly once, across restarts and crashes.

Layout: `DIR/events/date=YYYY-MM-DD/part-<id>.<parquet|ndjson>` (Hive-style, by the UTC day
of the event's `timestamp`), which DuckDB, pyarrow, Spark and BigQuery read as one dataset
with a `date` column. `DIR/_staging/` holds files being written and `DIR/.lock` keeps two
runs from sharing a directory; neither is under `events/`.

**Exactly once.** The store keeps, per directory (`exports`), the last event id written and
the last change taken into account. A run first reads the store's horizon
(`the_eye.store.exports.horizon`): the highest event id below which no transaction is still
in flight, so that an event a processor commits late (with an id lower than others already
committed, as a PostgreSQL sequence allows) is never skipped: it is above the horizon of
every run that could not see it. Then, in chunks of `CHUNK` events by id up to the horizon:
write each day's rows to `_staging`, `rename` them into place (atomic: a reader sees a
whole file or none), and only then save the chunk's last id in the store. A crash before
the save leaves files whose events the next run writes again, to the same names (a chunk is
named after its first id and holds the next `CHUNK` events after the saved position: the
same events again, or more when the first try was a run's last, shorter chunk), so the
rewrite replaces them instead of adding to them.

**Edits and deletes.** An edit or a delete (`PATCH`/`PUT`/`DELETE /events/{id}/`, session
erasure) records the day of the event, before and after, in `event_changes`, in its own
transaction. The next run rewrites each such day whole from the store: the day's events up
to the horizon go to one new partition directory in `_staging`, which then takes the old
one's place in one atomic exchange (`renameat2(RENAME_EXCHANGE)`; two renames where the
system lacks it); its new events are left out of the chunks. The changes are marked done
only after every such day is in place, so a crash means the next run rewrites them again.
Retention purges do not rewrite days: the export keeps history past the store's retention.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO, Literal

from sqlalchemy.engine import Engine

from the_eye.export.formats import EVENT_COLUMNS, EXTENSIONS, Row, encoder, require_parquet
from the_eye.store import exports, queries

FileFormat = Literal["parquet", "ndjson"]
FILE_FORMATS: tuple[FileFormat, ...] = ("parquet", "ndjson")

# Events read, encoded and written at a time (a Parquet row group): what an export holds in
# memory. Fixed, since a chunk's file name must mean the same events when a run is redone
# after a crash.
CHUNK = 25_000
STAGING = "_staging"
LOCK_FILE = ".lock"


# Where an exported event's id and timestamp sit in its row.
_ID = [column.name for column in EVENT_COLUMNS].index("id")
_TIMESTAMP = [column.name for column in EVENT_COLUMNS].index("timestamp")


class ExportRefused(Exception):
    """The export cannot run as asked (another run holds the directory, a different format
    or application than the directory was exported with, an unknown application)."""


@dataclass(slots=True)
class ExportReport:
    """What a run did: events written as new, days rewritten whole, files made."""

    exported: int = 0
    rewritten_days: list[date] = field(default_factory=list)
    rewritten_events: int = 0
    files: int = 0
    pending: int = 0  # new events the run set out to write (for a progress bar)


Progress = Callable[[ExportReport], None]


def export_events(
    engine: Engine,
    directory: Path,
    format: FileFormat = "parquet",
    application: str | None = None,
    progress: Progress | None = None,
) -> ExportReport:
    """Export to `directory` the events stored since its last run (every event on the first),
    and rewrite the days whose events were edited or deleted since. See the module's doc."""
    if format == "parquet":
        require_parquet()
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    with _locked(directory):
        return _Run(engine, directory, format, application, progress).run()


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    with open(directory / LOCK_FILE, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ExportRefused(f"another export to {directory} is running") from None
        yield


class _Run:
    def __init__(
        self,
        engine: Engine,
        directory: Path,
        format: FileFormat,
        application: str | None,
        progress: Progress | None,
    ) -> None:
        self.engine, self.format, self.application = engine, format, application
        self.destination = str(directory)
        self.events_dir = directory / "events"
        self.staging = directory / STAGING
        self.report = ExportReport()
        self.progress = progress or (lambda report: None)
        self.extension = EXTENSIONS[format]

    def run(self) -> ExportReport:
        # Whatever a run that died left half-written: never published, so never read.
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir()
        self.events_dir.mkdir(exist_ok=True)
        with self.engine.begin() as conn:
            app_id = self._application_id(conn)
            saved = exports.get_progress(conn, self.destination)
            self._check_same_export(saved)
        last_event = saved.last_event_id if saved else 0
        last_change = saved.last_change_id if saved else 0
        with self.engine.begin() as conn:
            horizon = exports.horizon(conn)
        with self.engine.connect() as conn:
            days = set(exports.changed_days(conn, last_change, horizon.last_change_id))
            self.report.pending = exports.count_new_events(
                conn, last_event, horizon.last_event_id, app_id
            )
        self.progress(self.report)
        self._export_new(last_event, last_change, horizon, days, app_id)
        for day in sorted(days):
            self._rewrite_day(day, horizon.last_event_id, app_id)
        with self.engine.begin() as conn:
            self._save(conn, horizon.last_event_id, horizon.last_change_id)
            exports.forget_changes(conn)
        shutil.rmtree(self.staging, ignore_errors=True)
        return self.report

    def _application_id(self, conn: Any) -> int | None:
        if self.application is None:
            return None
        app_id = queries.application_id(conn, self.application)
        if app_id is None:
            raise ExportRefused(f"no application named {self.application!r}")
        return app_id

    def _check_same_export(self, saved: Any) -> None:
        if saved is None:
            return
        if (saved.format, saved.application) != (self.format, self.application):
            was = f"{saved.format}, " + (
                f"application {saved.application!r}" if saved.application else "all applications"
            )
            raise ExportRefused(
                f"{self.destination} holds an export of {was}; "
                "export with the same options, or to another directory"
            )

    def _save(self, conn: Any, last_event: int, last_change: int) -> None:
        exports.save_progress(
            conn, self.destination, self.format, self.application, last_event, last_change
        )

    def _export_new(
        self,
        after: int,
        last_change: int,
        horizon: exports.Horizon,
        days: set[date],
        app_id: int | None,
    ) -> None:
        """Chunks of new events, each published and then saved (see the module's doc)."""
        while after < horizon.last_event_id:
            last = self._export_chunk(after, horizon.last_event_id, days, app_id)
            if last is None:
                break
            after = last
            with self.engine.begin() as conn:
                self._save(conn, after, last_change)
            self.progress(self.report)

    def _export_chunk(
        self, after: int, upto: int, days: set[date], app_id: int | None
    ) -> int | None:
        """Write the next chunk of events after `after` into place; return its last id, or
        None when there is none. (A method of its own, so that a chunk's rows are freed
        before the next one is read: memory holds one chunk, whatever the export's size.)"""
        with self.engine.connect() as conn:
            rows = exports.new_events(conn, after, upto, CHUNK, app_id)
        if not rows:
            return None
        by_day: dict[str, list[Row]] = {}
        for row in rows:
            by_day.setdefault(row[_TIMESTAMP][:10], []).append(row)
        name = f"part-{rows[0][_ID]:020d}.{self.extension}"
        for day, day_rows in by_day.items():
            if date.fromisoformat(day) in days:
                continue  # rewritten whole afterwards, its new events with it
            target = self.events_dir / f"date={day}" / name
            target.parent.mkdir(exist_ok=True)
            os.replace(self._write(day_rows), target)
            self.report.exported += len(day_rows)
            self.report.files += 1
        last_id: int = rows[-1][_ID]
        return last_id

    def _write(self, rows: list[Row]) -> Path:
        """Write `rows` as one file in the staging directory; return its path."""
        path = self.staging / f"{uuid.uuid4().hex}.{self.extension}"
        out = encoder(self.format, EVENT_COLUMNS)
        with open(path, "wb") as file:
            file.write(out.header())
            file.write(out.encode(rows))
            file.write(out.footer())
            _sync(file)
        return path

    def _rewrite_day(self, day: date, upto: int, app_id: int | None) -> None:
        """Replace the partition of `day` by the store's events of that day up to `upto`."""
        staged_dir = self.staging / f"date={day.isoformat()}"
        staged_dir.mkdir()
        out = encoder(self.format, EVENT_COLUMNS)
        count = 0
        after: tuple[Any, int] | None = None
        with open(staged_dir / f"part-{upto:020d}-day.{self.extension}", "wb") as file:
            file.write(out.header())
            while True:
                with self.engine.connect() as conn:
                    rows = exports.events_of_day(conn, day, upto, after, CHUNK, app_id)
                if not rows:
                    break
                file.write(out.encode(rows))
                count += len(rows)
                after = (exports.parse_time_text(rows[-1][_TIMESTAMP]), rows[-1][_ID])
                del rows  # before the next page is read: one page in memory at a time
            file.write(out.footer())
            _sync(file)
        target = self.events_dir / f"date={day.isoformat()}"
        if count == 0:
            shutil.rmtree(staged_dir)
            _remove_dir(target, self.staging / f"removed-{day.isoformat()}")
        else:
            _replace_dir(staged_dir, target)
            shutil.rmtree(staged_dir, ignore_errors=True)  # now the old partition
        self.report.rewritten_days.append(day)
        self.report.rewritten_events += count
        self.report.files += 1 if count else 0
        self.progress(self.report)


def _sync(file: BinaryIO) -> None:
    # On disk before it is renamed into place: a machine that stops then keeps a whole file.
    file.flush()
    os.fsync(file.fileno())


def _remove_dir(target: Path, aside: Path) -> None:
    """Take a directory out of the dataset at once (one rename), then delete it."""
    try:
        os.rename(target, aside)
    except FileNotFoundError:
        return
    shutil.rmtree(aside)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _renameat2() -> Any:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return getattr(libc, "renameat2", None)


def _replace_dir(new: Path, target: Path) -> None:
    """Put the directory `new` at `target`; the old `target`, if any, ends up at `new`.

    One atomic exchange where the system has it, so that a reader sees the old partition
    or the new one; else the old one is moved aside first (a reader may then see neither
    for an instant, never both)."""
    if not target.exists():
        os.rename(new, target)
        return
    exchange = _renameat2()
    if exchange is not None:
        done = exchange(_AT_FDCWD, bytes(new), _AT_FDCWD, bytes(target), _RENAME_EXCHANGE)
        if done == 0:
            return
        if ctypes.get_errno() not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), str(target))
    aside = new.with_name(new.name + ".old")
    os.rename(target, aside)
    os.rename(new, target)
    os.rename(aside, new)
